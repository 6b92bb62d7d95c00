//! `/admin/access`: the grid of which level may open which page, saved in one transaction.

use std::collections::HashSet;

use crate::web::Template;
use rocket::form::FromForm;
use rocket::request::FlashMessage;
use rocket::response::{Flash, Redirect};
use rocket::uri;
use rocket::{get, post, routes, Route, State};
use rocket_dyn_templates::context;
use serde::Serialize;

use crate::access::{page, Level, Page};
use crate::app::App;
use crate::audit::{action, Entry, Outcome};
use crate::auth::{Allowed, CsrfForm};
use crate::db::models::PageGrant;
use crate::web::error::Rejected;
use crate::web::Layout;

pub fn routes() -> Vec<Route> {
    routes![grid, save]
}

type Who = Allowed<page::AdminAccess>;

#[derive(Serialize)]
struct Cell {
    /// The checkbox value: `level:PageKey`.
    value: String,
    granted: bool,
    pinned: bool,
}

#[derive(Serialize)]
struct Row {
    title: &'static str,
    path: &'static str,
    cells: Vec<Cell>,
}

fn rows(app: &App) -> Vec<Row> {
    Page::grantable()
        .map(|page| Row {
            title: page.title(),
            path: page.path(),
            cells: Level::SIGNED_IN
                .iter()
                .map(|level| Cell {
                    value: format!("{}:{}", level.as_str(), page.key()),
                    granted: app.access.allows(*level, page),
                    pinned: page.is_pinned(*level),
                })
                .collect(),
        })
        .collect()
}

fn grid_template(app: &App, layout: Layout) -> Template {
    let levels: Vec<&str> = Level::SIGNED_IN.iter().map(|l| l.title()).collect();
    let always: Vec<&str> = Page::ALL
        .iter()
        .filter(|p| p.kind() != crate::access::PageKind::Granted)
        .map(|p| p.path())
        .collect();
    Template::render(
        "admin/access",
        context! { layout, rows: rows(app), levels, always },
    )
}

#[get("/admin/access")]
pub(crate) fn grid(who: Who, app: &State<App>, flash: Option<FlashMessage<'_>>) -> Template {
    grid_template(app, Layout::for_user(app, &who, flash))
}

#[derive(FromForm)]
pub struct GridForm {
    grant: Vec<String>,
}

fn parse_grant(value: &str) -> Option<(Level, Page)> {
    let (level, page) = value.split_once(':')?;
    let page = Page::parse(page)?;
    (page.kind() == crate::access::PageKind::Granted).then_some(())?;
    Some((Level::parse(level)?, page))
}

#[post("/admin/access", data = "<form>")]
async fn save(
    who: Who,
    app: &State<App>,
    form: CsrfForm<'_, GridForm>,
) -> Result<Flash<Redirect>, Rejected> {
    let values = form
        .value
        .as_ref()
        .map(|f| f.grant.clone())
        .unwrap_or_default();
    let parsed: Option<HashSet<(Level, Page)>> = values.iter().map(|v| parse_grant(v)).collect();
    let Some(granted) = parsed else {
        let layout = Layout::for_user(app, &who, None).with_message(
            "error",
            "The form named a page or level that does not exist; nothing was saved.",
        );
        return Err(Rejected::form(grid_template(app, layout)));
    };
    let detail = Level::SIGNED_IN
        .iter()
        .map(|level| {
            let pages: Vec<&str> = Page::grantable()
                .filter(|p| granted.contains(&(*level, *p)) || p.is_pinned(*level))
                .map(|p| p.key())
                .collect();
            format!("{}: {}", level.as_str(), pages.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let (actor, to_save) = (who.actor(), granted.clone());
    app.blocking(move |app, conn| {
        Ok(conn.write_transaction(|conn| {
            PageGrant::save_grid(&to_save, conn)?;
            app.state_seal.reseal(app.now(), conn)?;
            app.audit.append(
                conn,
                app.now(),
                &Entry::new(&actor, action::ACCESS_TABLE_SAVED, Outcome::Success).detail(detail),
            )?;
            PageGrant::load_granted(conn)
        })?)
    })
    .await
    .map(|saved| app.access.replace(saved))?;
    Ok(Flash::success(
        Redirect::to(uri!(crate::web::admin::access::grid)),
        "Page access saved.",
    ))
}
