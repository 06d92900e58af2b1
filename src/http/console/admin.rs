//! `/ui/admin`: tokens (issued, issuing one, revoking one) and the policy
//! in force with its history, through the services behind
//! `/api/v1/tokens` and `/api/v1/policies`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, given, see_other, urlencode, utc, Chrome, ConsoleError, Viewer};
use crate::auth::access::{parse_ttl, IssuedToken, PolicyVersion, TokenRecord, ALL_PROJECTS, DEFAULT_TOKEN_TTL};
use crate::auth::actions::{IssueTokens, ReadPolicy, RevokeTokens};
use crate::http::{ApiError, AppState};

#[derive(Template)]
#[template(path = "tokens.html", config = "src/http/console/askama.toml")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenRecord>,
    roles: Vec<String>,
    /// A token just issued: shown this once.
    issued: Option<IssuedToken>,
    revoked: Option<String>,
    error: Option<String>,
    form: IssueForm,
}

impl TokensPage {
    fn revoke_action(&self, jti: &str) -> String {
        format!("/ui/admin/tokens/{}/revoke", urlencode(jti))
    }
}

/// Query of `/ui/admin/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensQuery {
    revoked: Option<String>,
}

async fn tokens_page(
    viewer: &Viewer<IssueTokens>,
    state: &AppState,
    status: StatusCode,
    issued: Option<IssuedToken>,
    revoked: Option<String>,
    error: Option<String>,
    form: IssueForm,
) -> Result<HttpResponse, ConsoleError> {
    let mut tokens = state.access.tokens(&state.store).await.map_err(ApiError::from)?;
    tokens.reverse();
    let roles = state.access.authorizer.rules().roles().into_iter().collect();
    let page = TokensPage { chrome: viewer.chrome("Tokens", "tokens"), tokens, roles, issued, revoked, error, form };
    page::html_with(status, &page)
}

/// `GET /ui/admin/tokens`.
pub async fn tokens(
    viewer: Viewer<IssueTokens>,
    state: web::Data<AppState>,
    q: web::Query<TokensQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let revoked = q.into_inner().revoked;
    tokens_page(&viewer, &state, StatusCode::OK, None, revoked, None, IssueForm::default()).await
}

/// Form of `POST /ui/admin/tokens`.
#[derive(Debug, Default, Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    pub sub: String,
    /// Roles, separated by commas or spaces.
    #[serde(default)]
    pub roles: String,
    /// Projects, separated by commas or spaces; `*` (all) when empty.
    #[serde(default)]
    pub projects: String,
    #[serde(default)]
    pub ttl: String,
    #[serde(default)]
    pub new_project: Option<String>,
    #[serde(default)]
    csrf: String,
}

fn list(text: &str) -> Vec<String> {
    text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `POST /ui/admin/tokens`: issues a token, with `token.issued` on the
/// record, and shows it once (it is never stored, so never shown again).
pub async fn issue(
    viewer: Viewer<IssueTokens>,
    state: web::Data<AppState>,
    form: web::Form<IssueForm>,
) -> Result<HttpResponse, ConsoleError> {
    viewer.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let outcome = async {
        let ttl = parse_ttl(given(&form.ttl).as_deref().unwrap_or(DEFAULT_TOKEN_TTL))
            .map_err(|e| ApiError::new(crate::error_code::ErrorCode::InvalidRequest, e))?;
        let mut projects = list(&form.projects);
        if projects.is_empty() {
            projects.push(ALL_PROJECTS.to_owned());
        }
        let issued = state
            .access
            .issue_token(
                &state.store,
                viewer.guard.sub(),
                form.sub.trim(),
                &list(&form.roles),
                &projects,
                ttl,
                form.new_project.is_some(),
            )
            .await?;
        Ok::<_, ApiError>(issued)
    }
    .await;
    match outcome {
        Ok(issued) => {
            tokens_page(&viewer, &state, StatusCode::CREATED, Some(issued), None, None, IssueForm::default()).await
        }
        Err(e) => tokens_page(&viewer, &state, e.status(), None, None, Some(e.message().to_owned()), form).await,
    }
}

/// Form of `POST /ui/admin/tokens/{jti}/revoke`.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/admin/tokens/{jti}/revoke`: `token.revoked` on the record; the
/// token stops working at once, on the API and in the console.
pub async fn revoke(
    viewer: Viewer<RevokeTokens>,
    state: web::Data<AppState>,
    jti: web::Path<String>,
    form: web::Form<RevokeForm>,
) -> Result<HttpResponse, ConsoleError> {
    viewer.check_csrf(&form.csrf)?;
    let jti = jti.into_inner();
    let reason = given(&form.reason);
    state
        .access
        .revoke_token(&state.store, viewer.guard.sub(), &jti, reason.as_deref())
        .await
        .map_err(ApiError::from)?;
    Ok(see_other(&format!("/ui/admin/tokens?revoked={}", urlencode(&jti))))
}

/// A line of a diff between two policy versions.
pub struct DiffLine {
    /// `+`, `-` or ` `.
    pub mark: char,
    pub text: String,
}

/// The lines of `old` and `new` as a diff (longest common subsequence;
/// policies are a few hundred lines at most).
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(DiffLine { mark: ' ', text: a[i].to_owned() });
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(DiffLine { mark: '+', text: b[j].to_owned() });
            j += 1;
        } else {
            out.push(DiffLine { mark: '-', text: a[i].to_owned() });
            i += 1;
        }
    }
    out
}

#[derive(Template)]
#[template(path = "policy.html", config = "src/http/console/askama.toml")]
struct PolicyPage {
    chrome: Chrome,
    text: String,
    history: Vec<PolicyVersion>,
    /// The two versions compared (seq; 0 is the shipped default) and their diff.
    compared: Option<(u64, u64, Vec<DiffLine>)>,
}

impl PolicyPage {
    fn utc(&self, t: &str) -> String {
        utc(t)
    }
}

/// Query of `/ui/admin/policy`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /ui/admin/policy?from=SEQ&to=SEQ`: the policy in force, its
/// history, and the diff between two versions (0: the shipped default).
pub async fn policy(
    viewer: Viewer<ReadPolicy>,
    state: web::Data<AppState>,
    q: web::Query<PolicyQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let history = state.access.policy_history(&state.store).await.map_err(ApiError::from)?;
    let version = |seq: u64| -> Result<String, ConsoleError> {
        if seq == 0 {
            return Ok(crate::auth::policy::DEFAULT_POLICY.to_owned());
        }
        history.iter().find(|v| v.seq == seq).map(|v| v.text.clone()).ok_or_else(|| {
            ApiError::new(crate::error_code::ErrorCode::InvalidQuery, format!("no policy version at seq {seq}")).into()
        })
    };
    let compared = match (q.from, q.to) {
        (Some(from), Some(to)) => Some((from, to, diff(&version(from)?, &version(to)?))),
        _ => None,
    };
    page::html(&PolicyPage {
        chrome: viewer.chrome("Policy", "policy"),
        text: state.access.authorizer.rules().text,
        history,
        compared,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_diff_marks_what_was_added_and_removed() {
        let d = super::diff("a\nb\nc\n", "a\nc\nd\n");
        let marked: Vec<String> = d.iter().map(|l| format!("{}{}", l.mark, l.text)).collect();
        assert_eq!(marked, [" a", "-b", " c", "+d"]);
    }
}
