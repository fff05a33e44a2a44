pub mod connect;
pub use connect::*;
