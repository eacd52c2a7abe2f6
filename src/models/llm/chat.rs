//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template`, rendered with
//! minijinja (plus Python-style string methods that real templates use) exactly as the model's
//! authors wrote it — ChatML for SmolLM2, and whatever Qwen or Gemma instruct files bring.

use candle_core::quantized::gguf_file::{Content, Value};
use minijinja::{Environment, ErrorKind, context};

use super::{GgufTokenizer, LlmError, gguf};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
}

/// A chat template from GGUF metadata, compiled once.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Reads and compiles `tokenizer.chat_template`; `Ok(None)` for models without one (base
    /// models such as Gemma 3 270M), which then offer Continue mode only.
    pub fn from_gguf(content: &Content, _tok: &GgufTokenizer) -> Result<Option<Self>, LlmError> {
        let Some(source) = gguf::metadata_string(content, "tokenizer.chat_template") else {
            return Ok(None);
        };
        let piece = |key: &str| -> String {
            let id = gguf::metadata_u64(content, key);
            match (id, content.metadata.get("tokenizer.ggml.tokens")) {
                (Some(id), Some(Value::Array(tokens))) => match tokens.get(id as usize) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        };
        Self::compile(
            source,
            piece("tokenizer.ggml.bos_token_id"),
            piece("tokenizer.ggml.eos_token_id"),
        )
        .map(Some)
    }

    /// Compiles a template from source with the given BOS/EOS texts.
    pub fn compile(source: String, bos_token: String, eos_token: String) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String {
            // Templates use it for "today's date" in system prompts; a fixed, neutral value
            // keeps renders reproducible.
            String::new()
        });
        env.add_template_owned(NAME, source).map_err(|e| {
            LlmError::Template(format!("the model's chat template does not compile: {e}"))
        })?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders the conversation, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| LlmError::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => minijinja::Value::from(
                messages
                    .iter()
                    .map(|m| context! { role => &m.role, content => &m.content })
                    .collect::<Vec<_>>()
            ),
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| LlmError::Template(format!("rendering failed: {e}")))
    }

    /// The BOS text the template may emit itself (so the caller does not add a second BOS).
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::compile(CHATML.into(), String::new(), "<|im_end|>".into()).unwrap();
        let s = t
            .render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")])
            .unwrap();
        assert_eq!(
            s,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ messages[0]['content'].strip() }}";
        let t = ChatTemplate::compile(src.into(), String::new(), String::new()).unwrap();
        assert_eq!(t.render(&[ChatMessage::user("  x  ")]).unwrap(), "x");
        let err = t.render(&[ChatMessage::system("s")]).unwrap_err();
        assert!(err.to_string().contains("user first"), "{err}");
    }

    #[test]
    fn broken_template_is_a_clear_error() {
        let err = ChatTemplate::compile("{% for %}".into(), String::new(), String::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not compile"));
    }
}
