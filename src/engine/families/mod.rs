//! The worker's job families, one module each: language models ([`write`]), the face
//! generator ([`faces`]) and the style networks ([`style`]). Each implements
//! [`super::family::JobFamily`].

pub(crate) mod faces;
pub(crate) mod style;
pub(crate) mod write;
