//! Post/Redirect/Get for forms that come back to the user: "Add row", "Add more Regions", a
//! row's "Remove", and a form refused with an error. The POST keeps what was typed here, under
//! a random id bound to the session, and answers 303 to a GET page that shows it again; Back
//! and Forward then move between GET pages and the browser never asks to resend a form.
//!
//! A draft may hold a secret value: it lives in zeroizing memory, only for [`DRAFT_LIFETIME`],
//! and only the session that wrote it can read it (its CSRF token's digest is the owner). The
//! id goes in the URL; the value never does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::form::Form;
use crate::session::{Session, random_token};

/// A draft is shown again (Back, Forward, reload) for this long after its form was sent.
pub const DRAFT_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Drafts kept at most, over every session; the oldest goes first.
const MAX_DRAFTS: usize = 2_000;

/// What was wrong with a form: the message, and the id of the field it is about (its input
/// is marked invalid and gets the focus), or `None` for the form as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: Option<String>,
    pub text: String,
}

impl Problem {
    pub fn form(text: impl Into<String>) -> Problem {
        Problem {
            field: None,
            text: text.into(),
        }
    }

    pub fn field(field: &str, text: impl Into<String>) -> Problem {
        Problem {
            field: Some(field.to_string()),
            text: text.into(),
        }
    }
}

struct Draft {
    owner: [u8; 32],
    form: Form,
    problem: Option<Problem>,
    created: Instant,
}

#[derive(Default)]
pub struct Drafts {
    entries: Mutex<HashMap<String, Draft>>,
}

fn owner_of(session: &Session) -> [u8; 32] {
    Sha256::digest(session.csrf.as_bytes()).into()
}

impl Drafts {
    /// Keeps `form` (and what was wrong with it) for `session`; returns the draft's id.
    pub fn save(&self, session: &Session, form: &Form, problem: Option<Problem>) -> String {
        let id = random_token()[..32].to_string();
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("drafts lock");
        entries.retain(|_, d| now.saturating_duration_since(d.created) < DRAFT_LIFETIME);
        if entries.len() >= MAX_DRAFTS
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, d)| d.created)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(
            id.clone(),
            Draft {
                owner: owner_of(session),
                form: form.clone(),
                problem,
                created: now,
            },
        );
        id
    }

    /// The draft `id` of `session`, while it lasts (it can be shown again: Back, reload).
    pub fn load(&self, session: &Session, id: &str) -> Option<(Form, Option<Problem>)> {
        let entries = self.entries.lock().expect("drafts lock");
        let d = entries.get(id)?;
        (d.owner == owner_of(session) && d.created.elapsed() < DRAFT_LIFETIME)
            .then(|| (d.form.clone(), d.problem.clone()))
    }
}

/// What a form page shows of its problem and where the focus goes: the field the problem is
/// about (marked `aria-invalid`, its message under it), else the field `focus` (the row "Add
/// row" just added).
#[derive(Default)]
pub struct FormState {
    pub problem: Option<Problem>,
    pub focus: String,
}

impl FormState {
    pub fn new(problem: Option<Problem>, focus: impl Into<String>) -> FormState {
        FormState {
            problem,
            focus: focus.into(),
        }
    }

    /// A problem about the whole form (shown above it).
    pub fn banner(&self) -> Option<&str> {
        self.problem
            .as_ref()
            .filter(|p| p.field.is_none())
            .map(|p| p.text.as_str())
    }

    pub fn invalid(&self, id: &str) -> bool {
        self.problem
            .as_ref()
            .is_some_and(|p| p.field.as_deref() == Some(id))
    }

    /// The message of the problem about field `id` ("" when there is none).
    pub fn error_for(&self, id: &str) -> &str {
        match &self.problem {
            Some(p) if p.field.as_deref() == Some(id) => &p.text,
            _ => "",
        }
    }

    pub fn autofocus(&self, id: &str) -> bool {
        match &self.problem {
            Some(Problem { field: Some(f), .. }) => f == id,
            _ => self.focus == id,
        }
    }

    /// The same for field `prefix` + `index` (the rows of pairs, tags and Regions).
    pub fn invalid_at(&self, prefix: &str, index: impl std::fmt::Display) -> bool {
        self.invalid(&format!("{prefix}{index}"))
    }

    pub fn error_at(&self, prefix: &str, index: impl std::fmt::Display) -> String {
        self.error_for(&format!("{prefix}{index}")).to_string()
    }

    pub fn autofocus_at(&self, prefix: &str, index: impl std::fmt::Display) -> bool {
        self.autofocus(&format!("{prefix}{index}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Sessions;

    #[test]
    fn a_draft_is_read_only_by_its_own_session() {
        let sessions = Sessions::new(Duration::from_secs(900));
        let (_, mine) = sessions.start("A", "arn:aws:iam::123456789012:user/a", Instant::now());
        let (_, other) = sessions.start("A", "arn:aws:iam::123456789012:user/a", Instant::now());
        let drafts = Drafts::default();
        let form = Form::parse(b"pair_key=k&pair_value=hunter2");
        let id = drafts.save(&mine, &form, Some(Problem::field("name", "Enter a name.")));
        let (back, problem) = drafts.load(&mine, &id).expect("kept");
        assert_eq!(back.get("pair_value"), Some("hunter2"));
        assert_eq!(problem.unwrap().field.as_deref(), Some("name"));
        assert!(
            drafts.load(&mine, &id).is_some(),
            "shown again on Back or reload"
        );
        assert!(drafts.load(&other, &id).is_none());
        assert!(drafts.load(&mine, "not-a-draft").is_none());
    }

    #[test]
    fn the_field_with_the_problem_gets_the_focus() {
        let state = FormState::new(Some(Problem::field("name", "Enter a name.")), "pair-key-2");
        assert!(state.invalid("name") && state.autofocus("name"));
        assert!(!state.autofocus("pair-key-2"));
        assert_eq!(state.error_for("name"), "Enter a name.");
        assert_eq!(state.banner(), None);
        let state = FormState::new(None, "pair-key-2");
        assert!(state.autofocus_at("pair-key-", 2));
        let state = FormState::new(Some(Problem::form("Failed.")), "");
        assert_eq!(state.banner(), Some("Failed."));
    }
}
