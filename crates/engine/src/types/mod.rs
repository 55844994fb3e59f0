//! Collection value types, one module each, with their compact and large encodings.

pub mod hash;
pub mod list;
pub mod lock;
pub mod queue;
pub mod set;
pub mod stream;
mod table;
pub mod zset;

pub use hash::HashValue;
pub use list::ListValue;
pub use lock::LockValue;
pub use queue::QueueValue;
pub use set::SetValue;
pub use stream::StreamValue;
pub use zset::ZSetValue;
