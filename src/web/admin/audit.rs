//! `/admin/audit`: the audit trail, filtered and paged, and the check of its HMAC chain.

use crate::web::Template;
use rocket::form::FromForm;
use rocket::http::Status;
use rocket::request::FlashMessage;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use time::macros::format_description;

use crate::access::page;
use crate::app::App;
use crate::audit::{action, Entry, Outcome, VerifyReport};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::{AuditEvent, AuditFilter};
use crate::web::error::AppError;
use crate::web::{encode, ButtonForm, Layout, Paging};

pub fn routes() -> Vec<Route> {
    routes![list, verify]
}

type Who = Allowed<page::AdminAudit>;
const PER_PAGE: i64 = 50;

/// Midnight UTC of a `YYYY-MM-DD` date, as seconds since the epoch.
fn parse_day(text: &str) -> Option<i64> {
    let date = time::Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

struct Query {
    actor: String,
    action: String,
    from: String,
    until: String,
    page: i64,
}

async fn render(
    app: &App,
    layout: Layout,
    query: Query,
    report: Option<VerifyReport>,
) -> Result<(Status, Template), AppError> {
    let mut problems = Vec::new();
    let mut day = |text: &str, name: &str| match text {
        "" => None,
        text => {
            let parsed = parse_day(text);
            if parsed.is_none() {
                problems.push(format!("The {name} date must look like 2026-01-31."));
            }
            parsed
        }
    };
    let filter = AuditFilter {
        actor: Some(query.actor.clone()),
        action: Some(query.action.clone()),
        from: day(&query.from, "from"),
        until: day(&query.until, "until").map(|d| d + 86_400),
    };
    let page = query.page;
    let (events, paging, actions) = app
        .blocking(move |_, conn| {
            let total = AuditEvent::list(&filter, 0, 0, conn)?.1;
            let paging = Paging::new(page, PER_PAGE, total);
            let events = AuditEvent::list(&filter, paging.offset(PER_PAGE), PER_PAGE, conn)?.0;
            Ok((events, paging, AuditEvent::actions(conn)?))
        })
        .await?;
    let status = if problems.is_empty() {
        Status::Ok
    } else {
        Status::UnprocessableEntity
    };
    let Query {
        actor,
        action,
        from,
        until,
        ..
    } = query;
    let pager_base = format!(
        "/admin/audit?actor={}&action={}&from={}&until={}&",
        encode(&actor),
        encode(&action),
        encode(&from),
        encode(&until)
    );
    Ok((
        status,
        Template::render(
            "admin/audit",
            context! { layout, events, paging, pager_base, actions, actor, action, from, until, problems, report },
        ),
    ))
}

/// The audit page's query string; every field may be absent.
#[derive(FromForm, Default)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    from: Option<String>,
    until: Option<String>,
    page: Option<i64>,
}

#[get("/admin/audit?<filter..>")]
async fn list(
    who: Who,
    app: &State<App>,
    flash: Option<FlashMessage<'_>>,
    filter: Option<AuditQuery>,
) -> Result<(Status, Template), AppError> {
    let filter = filter.unwrap_or_default();
    let query = Query {
        actor: filter.actor.unwrap_or_default().trim().to_lowercase(),
        action: filter.action.unwrap_or_default(),
        from: filter.from.unwrap_or_default().trim().to_string(),
        until: filter.until.unwrap_or_default().trim().to_string(),
        page: filter.page.unwrap_or(1),
    };
    let layout = Layout::for_user(app, &who, flash);
    render(app, layout, query, None).await
}

/// Walks the chain, records that it was checked, and shows the first broken link if any.
#[post("/admin/audit/verify", data = "<_form>")]
async fn verify(
    who: Who,
    app: &State<App>,
    _form: CsrfForm<'_, ButtonForm>,
) -> Result<(Status, Template), AppError> {
    let actor = who.actor();
    let report = app
        .blocking(move |app, conn| {
            let report = app.audit.verify(conn)?;
            let (outcome, detail) = match &report.first_broken {
                None => (
                    Outcome::Success,
                    format!("{} events intact", report.checked),
                ),
                Some(b) => (
                    Outcome::Failure,
                    format!("broken at event {}: {}", b.id, b.reason),
                ),
            };
            app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::AUDIT_VERIFIED, outcome).detail(detail),
            )?;
            Ok(report)
        })
        .await?;
    let layout = Layout::for_user(app, &who, None);
    let query = Query {
        actor: String::new(),
        action: String::new(),
        from: String::new(),
        until: String::new(),
        page: 1,
    };
    render(app, layout, query, Some(report)).await
}
