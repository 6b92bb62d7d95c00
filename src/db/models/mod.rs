//! One file per entity: the struct, plain methods, then queries taking the connection last.

pub mod account_lockout;
pub mod audit_event;
pub mod job_lease;
pub mod key_check;
pub mod page_grant;
pub mod records;
pub mod session;
pub mod setting;
pub mod two_factor;
pub mod user;
pub mod wrapped_key;

pub use account_lockout::AccountRecord;
pub use audit_event::{AuditEvent, AuditFilter, NewAuditEvent};
pub use job_lease::{JobLease, LeaseHolder};
pub use page_grant::PageGrant;
pub use session::{NewSession, SessionRow, STAGE_FULL, STAGE_SECOND_FACTOR};
pub use setting::Setting;
pub use user::{NewUser, User, UserFilter};
