//! The controllers, siblings built the same way: each declares what it watches, maps other kinds'
//! changes to its own objects (`triggers`), runs one pass per object (`pass`, deciding with the pure
//! crates) and writes through the runtime's writer (`writes`); `controller` wires them into the
//! runtime's control loop. A new controller is a copy of that pattern.

pub mod claim;
pub mod extensions;
pub mod pool;
pub mod sandbox;
pub mod template;
