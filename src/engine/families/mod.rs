//! The worker's job families, one module each: language models ([`write`]), the face
//! generator ([`faces`]) and the style networks ([`style`]); training ([`train`]) runs on the
//! long-job lane instead. Each implements
//! [`super::family::JobFamily`].

pub(crate) mod faces;
pub(crate) mod style;
pub(crate) mod train;
pub(crate) mod write;
