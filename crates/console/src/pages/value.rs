//! The secret value: "Retrieve secret value" (revealed only on that click), and editing it as
//! key/value pairs or plaintext (GetSecretValue, PutSecretValue).
//!
//! The value reaches a page only when the user asks for it: "Retrieve secret value" (a POST;
//! without JavaScript it redirects to the secret's page with a draft id that only this session
//! can use), "Edit secret value", or the user's own form shown again after an error or "Add
//! row" (see [`crate::drafts`]). It never goes in a URL; every console response is
//! `Cache-Control: no-store`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::ErrorCode;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::ops::{get_secret_value, put_secret_value};
use zeroize::{Zeroize, Zeroizing};

use crate::drafts::{FormState, Problem};
use crate::form::{Form, url};
use crate::view::secret_url;
use crate::{Console, Ctx, Layout, html, is_htmx, render, see_other};

/// The value editor shared by "Store a new secret" and "Edit secret value".
pub struct ValueEditor {
    pub plaintext_mode: bool,
    pub pairs: Vec<(String, String)>,
    pub plaintext: String,
}

impl Drop for ValueEditor {
    fn drop(&mut self) {
        for (k, v) in &mut self.pairs {
            k.zeroize();
            v.zeroize();
        }
        self.plaintext.zeroize();
    }
}

impl ValueEditor {
    pub fn empty() -> ValueEditor {
        ValueEditor {
            plaintext_mode: false,
            pairs: vec![(String::new(), String::new())],
            plaintext: String::new(),
        }
    }

    /// The editor as the user filled it in; `add_row` appends an empty pair.
    pub fn from_form(form: &Form, add_row: bool) -> ValueEditor {
        let mut pairs: Vec<(String, String)> = form
            .all("pair_key")
            .zip(form.all("pair_value"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if pairs.is_empty() || add_row {
            pairs.push((String::new(), String::new()));
        }
        ValueEditor {
            plaintext_mode: form.get("value_kind") == Some("plaintext"),
            pairs,
            plaintext: form.get("plaintext").unwrap_or_default().to_string(),
        }
    }

    /// An editor showing a stored value: pairs when it is a flat JSON object, else plaintext.
    pub fn from_value(value: &str) -> ValueEditor {
        match pairs_of(value) {
            Some(pairs) => ValueEditor {
                plaintext_mode: false,
                pairs,
                plaintext: value.to_string(),
            },
            None => ValueEditor {
                plaintext_mode: true,
                pairs: vec![(String::new(), String::new())],
                plaintext: value.to_string(),
            },
        }
    }

    /// The SecretString to store, or what is wrong with the form and at which field. A value
    /// is required, as in AWS's console (a secret without one has no AWSCURRENT version).
    pub fn value(&self) -> Result<Zeroizing<String>, Problem> {
        if self.plaintext_mode {
            let n = self.plaintext.chars().count();
            return match n {
                0 => Err(Problem::field("plaintext", "Enter a secret value.")),
                n if n > MAX_VALUE_CHARS => Err(Problem::field(
                    "plaintext",
                    format!(
                        "The value has {n} characters; a secret value can have at most 65,536."
                    ),
                )),
                _ => Ok(Zeroizing::new(self.plaintext.clone())),
            };
        }
        // Rows by their number on the page (1-based), blank rows left out.
        let pairs: Vec<(usize, &(String, String))> = self
            .pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p))
            .filter(|(_, (k, v))| !k.is_empty() || !v.is_empty())
            .collect();
        if pairs.is_empty() {
            return Err(Problem::field(
                "pair-key-1",
                "Enter a secret value: at least one key and its value (or choose Plaintext).",
            ));
        }
        for (i, (row, (k, _))) in pairs.iter().enumerate() {
            if k.is_empty() {
                return Err(Problem::field(
                    &format!("pair-key-{row}"),
                    "Enter a key for this value.",
                ));
            }
            if pairs[..i].iter().any(|(_, (other, _))| other == k) {
                return Err(Problem::field(
                    &format!("pair-key-{row}"),
                    format!("The key '{k}' appears twice; keys must be unique."),
                ));
            }
        }
        let only: Vec<&(String, String)> = pairs.iter().map(|(_, p)| *p).collect();
        let json = json_object(&only);
        let n = json.chars().count();
        if n > MAX_VALUE_CHARS {
            // The longest value is the one to shorten first.
            let row = pairs
                .iter()
                .max_by_key(|(_, (_, v))| v.len())
                .map_or(1, |(row, _)| *row);
            return Err(Problem::field(
                &format!("pair-value-{row}"),
                format!(
                    "The key/value pairs are stored as one JSON text (the secret's SecretString), which would have {n} characters; a secret value can have at most 65,536. Shorten the values or keep them in several secrets."
                ),
            ));
        }
        Ok(json)
    }
}

/// SecretString's limit, in characters (as the API counts it).
const MAX_VALUE_CHARS: usize = 65_536;

/// `{"k":"v",...}` written straight into zeroizing memory, sized up front so it never moves.
fn json_object(pairs: &[&(String, String)]) -> Zeroizing<String> {
    let capacity = 2 + pairs
        .iter()
        .map(|(k, v)| 6 * (k.len() + v.len()) + 6)
        .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    out.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k.as_str()).expect("writing to memory");
        out.push(b':');
        serde_json::to_writer(&mut *out, v.as_str()).expect("writing to memory");
    }
    out.push(b'}');
    let bytes = std::mem::take(&mut *out);
    Zeroizing::new(String::from_utf8(bytes).expect("JSON is UTF-8"))
}

/// The pairs of a flat JSON object (string, number or boolean values), in the order they are
/// written, as AWS's console shows a value in its Key/value view; `None` for anything else.
pub fn pairs_of(value: &str) -> Option<Vec<(String, String)>> {
    let pairs = serde_json::from_str::<FlatObject>(value).ok()?.0;
    (!pairs.is_empty()).then_some(pairs)
}

/// A JSON object with scalar values, keeping the order of its members (serde_json's map
/// sorts them).
struct FlatObject(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for FlatObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FlatObject, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FlatObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of scalar values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FlatObject, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => return Err(serde::de::Error::custom("not a flat object")),
                    };
                    pairs.push((k, text));
                }
                Ok(FlatObject(pairs))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[derive(Template)]
#[template(path = "secret_value.html")]
pub struct ValueSection {
    pub csrf: String,
    pub region: String,
    pub name: String,
    pub revealed: bool,
    pub pairs: Option<Vec<(String, String)>>,
    pub plaintext: String,
    pub binary: bool,
    pub version_id: String,
    pub stages: String,
    pub editable: bool,
    pub error: Option<String>,
    /// The error says the secret has no AWSCURRENT value (a "Set secret value" link follows).
    pub no_value: bool,
    pub hide_url: String,
    pub edit_url: String,
}

impl Drop for ValueSection {
    fn drop(&mut self) {
        for (k, v) in self.pairs.iter_mut().flatten() {
            k.zeroize();
            v.zeroize();
        }
        self.plaintext.zeroize();
    }
}

impl ValueSection {
    pub fn hidden(csrf: &str, region: &str, name: &str, editable: bool) -> ValueSection {
        ValueSection {
            csrf: csrf.to_string(),
            region: region.to_string(),
            name: name.to_string(),
            revealed: false,
            pairs: None,
            plaintext: String::new(),
            binary: false,
            version_id: String::new(),
            stages: String::new(),
            editable,
            error: None,
            no_value: false,
            hide_url: secret_url(region, name),
            edit_url: edit_url(region, name),
        }
    }
}

/// "Retrieve secret value": with htmx the section alone is swapped in; without JavaScript
/// the POST answers 303 to the secret's page, which retrieves the value again for the draft it
/// names (Post/Redirect/Get: Back and Forward never ask to resend the form).
pub async fn retrieve(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let htmx = is_htmx(request.headers());
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    if !htmx {
        ctx.region(&region_name)?;
        return Ok(ctx.redirect_with_draft(
            &secret_url(&region_name, &name),
            &form,
            None,
            "#secret-value",
        ));
    }
    let section = reveal(&ctx, &region_name, &name, &form).await?;
    Ok(match section.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The value could not be shown.".into(),
        ),
    })
}

/// The value section with the value read now (GetSecretValue), as `form` asked for it.
pub async fn reveal(
    ctx: &Ctx,
    region_name: &str,
    name: &str,
    form: &Form,
) -> Result<ValueSection, Response> {
    let region = ctx.region(region_name)?;
    let result = ctx
        .call(
            &region,
            SecretsManager::GetSecretValue,
            get_secret_value::run,
            get_secret_value::Input {
                secret_id: Some(name.to_string()),
                version_id: form.optional("version_id"),
                version_stage: None,
            },
        )
        .await;
    let editable = form.get("editable") == Some("true");
    let mut section = ValueSection::hidden(&ctx.session.csrf, region_name, name, editable);
    match result {
        Ok(out) => {
            section.revealed = true;
            section.version_id = out.version_id.clone();
            section.stages = out.version_stages.join(", ");
            section.editable = editable && out.secret_string.is_some();
            if let Some(s) = &out.secret_string {
                section.pairs = pairs_of(s);
                section.plaintext = s.to_string();
            } else if let Some(b) = &out.secret_binary {
                use base64::Engine;
                section.binary = true;
                section.plaintext = base64::engine::general_purpose::STANDARD.encode(b.as_slice());
            }
        }
        Err(e) => {
            section.no_value =
                e.code == ErrorCode::ResourceNotFound && e.message.contains("staging label");
            section.error = Some(e.message);
        }
    }
    Ok(section)
}

#[derive(Template)]
#[template(path = "edit_value.html")]
struct EditValuePage {
    layout: Layout,
    region: String,
    name: String,
    editor: ValueEditor,
    fs: FormState,
    /// The secret has no AWSCURRENT version yet: what is saved becomes its first value.
    first_value: bool,
    back_url: String,
}

/// The "Edit secret value" page's address.
pub fn edit_url(region: &str, name: &str) -> String {
    url(
        "/console/secret/edit-value",
        &[("region", region), ("name", name)],
    )
}

/// GET "Edit secret value": the editor, filled with the current value (GetSecretValue), or
/// with what the user typed when a form came back (see [`crate::drafts`]). A secret without
/// an AWSCURRENT version (stored through the API without a value) gets an empty editor, so the
/// console can give it a value.
pub async fn edit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let region = ctx.region(&region_name)?;
    let page = |editor: ValueEditor, fs: FormState, first_value: bool| {
        render(
            StatusCode::OK,
            &EditValuePage {
                layout: ctx.layout(&format!("Edit secret value: {name}"), &region_name),
                region: region_name.clone(),
                name: name.clone(),
                editor,
                fs,
                first_value,
                back_url: secret_url(&region_name, &name),
            },
        )
    };
    let mut problem = None;
    match ctx.draft(&q) {
        Some(Ok((form, p))) => {
            let add_row = form.get("more") == Some("pair");
            let editor = ValueEditor::from_form(&form, add_row);
            let focus = if add_row {
                format!("pair-key-{}", editor.pairs.len())
            } else {
                String::new()
            };
            return Ok(page(
                editor,
                FormState::new(p, focus),
                form.checked("first_value"),
            ));
        }
        Some(Err(p)) => problem = Some(p),
        None => {}
    }
    let result = ctx
        .call(
            &region,
            SecretsManager::GetSecretValue,
            get_secret_value::run,
            get_secret_value::Input {
                secret_id: Some(name.clone()),
                version_id: None,
                version_stage: None,
            },
        )
        .await;
    match result {
        Ok(out) => match &out.secret_string {
            Some(s) => Ok(page(
                ValueEditor::from_value(s),
                FormState::new(problem, ""),
                false,
            )),
            None => {
                ctx.flash(
                    true,
                    "This secret has a binary value; change it with PutSecretValue through the API.",
                );
                Ok(see_other(&secret_url(&region_name, &name)))
            }
        },
        Err(e) if e.code == ErrorCode::ResourceNotFound && e.message.contains("staging label") => {
            Ok(page(
                ValueEditor::empty(),
                FormState::new(problem, "pair-key-1"),
                true,
            ))
        }
        Err(e) => {
            ctx.flash(true, e.message);
            Ok(see_other(&secret_url(&region_name, &name)))
        }
    }
}

/// Saves the edited value as a new AWSCURRENT version (PutSecretValue). "Add row" and a
/// refused value come back to the GET page (Post/Redirect/Get).
pub async fn put(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    let region = ctx.region(&region_name)?;
    let again = edit_url(&region_name, &name);
    if form.get("more") == Some("pair") {
        let row = form.all("pair_key").count().max(1) + 1;
        return Ok(ctx.redirect_with_draft(&again, &form, None, &format!("#pair-key-{row}")));
    }
    let editor = ValueEditor::from_form(&form, false);
    let value = match editor.value() {
        Ok(v) => v,
        Err(p) => return Ok(ctx.redirect_with_draft(&again, &form, Some(p), "")),
    };
    let result = ctx
        .call(
            &region,
            SecretsManager::PutSecretValue,
            put_secret_value::run,
            put_secret_value::Input {
                secret_id: Some(name.clone()),
                client_request_token: Some(uuid::Uuid::new_v4().to_string()),
                secret_string: Some(value),
                secret_binary: None,
                version_stages: None,
                rotation_token: None,
            },
        )
        .await;
    match result {
        Ok(out) => {
            ctx.flash(
                false,
                format!(
                    "Saved the new secret value as version {} (AWSCURRENT).",
                    out.version_id
                ),
            );
            Ok(see_other(&secret_url(&region_name, &name)))
        }
        Err(e) => Ok(ctx.redirect_with_draft(&again, &form, Some(Problem::form(e.message)), "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(pairs: &[(&str, &str)]) -> ValueEditor {
        ValueEditor {
            plaintext_mode: false,
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            plaintext: String::new(),
        }
    }

    #[test]
    fn pairs_become_a_json_object_in_order() {
        let v = editor(&[("username", "app"), ("password", "a\"b\\c"), ("", "")])
            .value()
            .unwrap();
        assert_eq!(v.as_str(), r#"{"username":"app","password":"a\"b\\c"}"#);
        let back = pairs_of(&v).unwrap();
        assert_eq!(back[0], ("username".to_string(), "app".to_string()));
        assert_eq!(back[1].1, "a\"b\\c");
    }

    #[test]
    fn keys_are_required_and_unique_and_a_value_is_required() {
        let field = |e: ValueEditor| e.value().unwrap_err().field.unwrap();
        assert_eq!(field(editor(&[("a", "1"), ("", "x")])), "pair-key-2");
        assert_eq!(
            field(editor(&[("a", "1"), ("", ""), ("a", "2")])),
            "pair-key-3"
        );
        assert_eq!(field(editor(&[("", "")])), "pair-key-1");
    }

    #[test]
    fn an_oversized_value_names_the_json_it_is_stored_as() {
        let big = "x".repeat(40_000);
        let e = editor(&[("a", "1"), ("b", &big), ("c", &big[..30_000])])
            .value()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("pair-value-2"));
        assert!(e.text.contains("stored as one JSON text"), "{}", e.text);
        assert!(!e.text.contains(&big[..10]), "the value is not echoed");
    }

    #[test]
    fn plaintext_is_kept_exactly() {
        let e = ValueEditor {
            plaintext_mode: true,
            pairs: Vec::new(),
            plaintext: " two words\n".into(),
        };
        assert_eq!(e.value().unwrap().as_str(), " two words\n");
    }

    #[test]
    fn only_flat_objects_show_as_pairs() {
        let pairs = pairs_of(r#"{"z":"1","b":2,"c":true}"#).unwrap();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "b", "c"], "written order, not sorted");
        assert!(pairs_of(r#"{"a":{"nested":1}}"#).is_none());
        assert!(pairs_of("[1,2]").is_none());
        assert!(pairs_of("plain words").is_none());
        assert!(pairs_of("{}").is_none());
        assert!(ValueEditor::from_value("plain").plaintext_mode);
        assert!(!ValueEditor::from_value(r#"{"a":"b"}"#).plaintext_mode);
    }
}
