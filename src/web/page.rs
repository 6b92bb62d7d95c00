//! [`Template`]: a Tera template rendered from the handler's context with one conversion.
//!
//! rocket_dyn_templates still loads the templates (and reloads them in debug builds) and runs
//! the callback that registers medvault's filters; that callback also hands the loaded engine
//! to [`Templates`]. rocket_dyn_templates' own `Template` turns a context into figment values
//! and, when the response is written, those into Tera's: two passes over every value of the
//! page, a seventh of the record page's CPU under load (BENCHMARKS.md). Ours converts once.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket_dyn_templates::tera::{Context, Tera};
use serde::Serialize;

/// The template engine the fairing loaded last, shared with the responders.
#[derive(Clone, Default)]
pub struct Templates(Arc<RwLock<Option<Arc<Tera>>>>);

impl Templates {
    /// Keeps a copy of `tera` for the pages (called at start and after each reload).
    pub fn store(&self, tera: &Tera) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(tera.clone()));
    }

    fn current(&self) -> Option<Arc<Tera>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A page to render: the template's name (as rocket_dyn_templates names it, without
/// extensions) and its context, already in Tera's form.
pub struct Template {
    name: Cow<'static, str>,
    context: Result<Context, String>,
}

impl Template {
    pub fn render(name: impl Into<Cow<'static, str>>, context: impl Serialize) -> Template {
        Template {
            name: name.into(),
            context: Context::from_serialize(context).map_err(|e| e.to_string()),
        }
    }

    /// The page as HTML, or why it cannot be rendered (a bug: logged, answered with a 500).
    fn html(&self, templates: Option<&Templates>) -> Result<String, String> {
        let tera = templates
            .and_then(Templates::current)
            .ok_or("the templates are not loaded")?;
        let context = self.context.as_ref().map_err(Clone::clone)?;
        tera.render(&self.name, context).map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        })
    }
}

impl<'r> Responder<'r, 'static> for Template {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self.html(req.rocket().state::<Templates>()) {
            Ok(html) => (ContentType::HTML, html).respond_to(req),
            Err(problem) => {
                tracing::error!(template = %self.name, %problem, "cannot render a page");
                Err(Status::InternalServerError)
            }
        }
    }
}
