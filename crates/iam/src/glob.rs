//! IAM wildcard matching: `*` matches any run of characters (including none, and across `:` and
//! `/`), `?` exactly one. Patterns are token lists so that text substituted from a policy
//! variable (`${aws:username}`) or `${*}` matches literally.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    Star,
    One,
}

/// Tokens of a pattern without variables.
pub(crate) fn tokens(pattern: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(pattern.len());
    push_pattern(&mut out, pattern);
    out
}

pub(crate) fn push_pattern(out: &mut Vec<Tok>, pattern: &str) {
    out.extend(pattern.chars().map(|c| match c {
        '*' => Tok::Star,
        '?' => Tok::One,
        c => Tok::Lit(c),
    }));
}

pub(crate) fn push_literal(out: &mut Vec<Tok>, text: &str) {
    out.extend(text.chars().map(Tok::Lit));
}

/// Whether `text` matches `pattern`; `fold` compares ASCII case-insensitively (actions).
pub(crate) fn matches(pattern: &[Tok], text: &str, fold: bool) -> bool {
    // The common cases without allocating: `*`, and patterns without wildcards.
    if let [Tok::Star] = pattern {
        return true;
    }
    if pattern.iter().all(|t| matches!(t, Tok::Lit(_))) {
        let mut chars = text.chars();
        let same = pattern.iter().all(|t| match (t, chars.next()) {
            (Tok::Lit(p), Some(c)) => {
                if fold {
                    p.eq_ignore_ascii_case(&c)
                } else {
                    *p == c
                }
            }
            _ => false,
        });
        return same && chars.next().is_none();
    }
    let text: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Classic linear backtracking over the last star.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if eq(*c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|tok| *tok == Tok::Star)
}
