//! Fine-tuning a language model on the writer's own text with LoRA adapters.
