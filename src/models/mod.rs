//! Model families, one module each. The worker owns loaded models; nothing here spawns threads.

pub mod dcgan;
pub mod gan;
pub mod huge_pages;
pub mod llm;
pub mod onnx;
pub mod pickle;
pub mod state_dict;
pub mod stylenet;
