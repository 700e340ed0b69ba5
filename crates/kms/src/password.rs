//! `GetRandomPassword` (spec §4.14): random passwords from the AWS character classes.

use rand::Rng;
use rand::seq::SliceRandom;
use zeroize::Zeroizing;

/// `A–Z`.
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// `a–z`.
pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// `0–9`.
pub const NUMBERS: &str = "0123456789";
/// The 32 ASCII punctuation characters AWS uses.
pub const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;

/// Longest password AWS generates; longer requests are a `ValidationException` upstream.
pub const MAX_LENGTH: u64 = 4096;

/// The `GetRandomPassword` request parameters, with AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    /// Default 32.
    pub length: u64,
    /// Characters never to use; removed from every class (space included).
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    /// Default false: space is a class of its own, used only when asked for.
    pub include_space: bool,
    /// Default true: at least one character of every class left after the exclusions.
    pub require_each_included_type: bool,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// Why no password could be generated. The messages are meant for an
/// `InvalidParameterException` as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Outside 1..=4096. The API layer validates this first (as a `ValidationException`); this
    /// variant only keeps the generator total.
    #[error("Password length must be between 1 and 4096.")]
    InvalidLength { length: u64 },
    /// The `Exclude*` switches and `ExcludeCharacters` leave no character to choose from.
    /// (Wording ours: AWS's text for this case is not recorded anywhere we could check.)
    #[error("The password must contain at least one character type, but every type is excluded.")]
    NoCharacterTypes,
    /// With `RequireEachIncludedType`, the length is smaller than the number of classes left
    /// (moto's wording, spec §4.14).
    #[error("Password length is too short based on the required types.")]
    TooShort { length: u64, required: usize },
}

/// Generates a password following `rules`, from a CSPRNG (`rand::thread_rng`, ChaCha seeded by
/// the operating system), each character chosen uniformly from the allowed set.
///
/// With `require_each_included_type`, one character is first drawn from each class that has
/// characters left after the exclusions, the rest from the union of the classes, and the whole
/// is shuffled so the guaranteed characters sit at random positions.
pub fn generate(rules: &PasswordRules) -> Result<Zeroizing<String>, PasswordError> {
    let length = match usize::try_from(rules.length) {
        Ok(length) if (1..=MAX_LENGTH).contains(&rules.length) => length,
        _ => {
            return Err(PasswordError::InvalidLength {
                length: rules.length,
            });
        }
    };
    let excluded = |c: &u8| rules.exclude_characters.as_bytes().contains(c);
    let classes: Vec<Vec<u8>> = [
        (UPPERCASE, !rules.exclude_uppercase),
        (LOWERCASE, !rules.exclude_lowercase),
        (NUMBERS, !rules.exclude_numbers),
        (PUNCTUATION, !rules.exclude_punctuation),
        (" ", rules.include_space),
    ]
    .into_iter()
    .filter(|&(_, included)| included)
    .map(|(class, _)| class.bytes().filter(|c| !excluded(c)).collect::<Vec<u8>>())
    .filter(|class| !class.is_empty())
    .collect();
    if classes.is_empty() {
        return Err(PasswordError::NoCharacterTypes);
    }
    if rules.require_each_included_type && length < classes.len() {
        return Err(PasswordError::TooShort {
            length: rules.length,
            required: classes.len(),
        });
    }
    let alphabet: Vec<u8> = classes.concat();

    let mut rng = rand::thread_rng();
    // `gen_range` (also used by `shuffle`) rejects out-of-range samples, so it is unbiased.
    let pick = |rng: &mut rand::rngs::ThreadRng, set: &[u8]| set[rng.gen_range(0..set.len())];
    let mut chars = Zeroizing::new(Vec::with_capacity(length));
    if rules.require_each_included_type {
        for class in &classes {
            chars.push(pick(&mut rng, class));
        }
    }
    while chars.len() < length {
        chars.push(pick(&mut rng, &alphabet));
    }
    chars.shuffle(&mut rng);

    // Every byte is printable ASCII, so each is one `char`; pushing into a string of the final
    // capacity avoids an unwiped intermediate copy.
    let mut password = Zeroizing::new(String::with_capacity(length));
    password.extend(chars.iter().map(|&c| char::from(c)));
    Ok(password)
}
