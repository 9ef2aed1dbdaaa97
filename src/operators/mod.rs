//! The operators under test: their versions resolved ([`versions`]), their manifests rendered
//! and cached ([`render`]), and installed on a cluster ([`install`]).
//!
//! May use: `cluster`, `outcome`, `images` (retagging), `suite` and `util`.

pub mod install;
pub mod render;
pub mod versions;
