//! Moving stored values to the form the policy wants: the re-encryption job, which runs after a
//! policy change or a root-key rotation, and the rotation itself. Both work on the
//! [`crate::services::Services`], above the field encryption they drive.

pub mod job;
pub mod rotation;
