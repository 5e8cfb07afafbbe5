//! What one client or user may cost us: connections at once and per minute, failed logins,
//! and messages and recipients per hour and day.

pub mod client_key;
pub mod limiter;
pub mod sending;
pub mod throttle;
