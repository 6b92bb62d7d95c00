//! The pages' way to the database: work runs on a blocking thread (Diesel is synchronous) and
//! is handed its own handle on the [`App`], so that no handler clones it by hand first.

use crate::app::App;
use crate::db::Conn;
use crate::web::error::AppError;

impl App {
    /// Runs `work` on a blocking thread with a connection, behind the database's permits (see
    /// [`crate::db::Db::run`]); its error is the page's.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&App, &mut Conn) -> Result<T, AppError> + Send + 'static,
    {
        let app = self.clone();
        self.db.run(move |conn| work(&app, conn)).await
    }
}
