//! The `kald` binary.
fn main() {}
