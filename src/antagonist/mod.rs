//! Fault injection. For now: packet loss on a container's link ([`loss`]), used by the tests and
//! by the antagonist's loss attacks.

pub mod loss;
