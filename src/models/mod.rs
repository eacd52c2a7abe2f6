//! Model families, one module each. The worker owns loaded models; nothing here spawns threads.

pub mod llm;
