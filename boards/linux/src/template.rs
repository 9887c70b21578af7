//! Chat templates: the Jinja text a model file carries in `tokenizer.chat_template`, rendered
//! with minijinja. The template comes from the file, so it is untrusted input like the rest of it.

use anyhow::{Context, Result};
use minijinja::{context, Environment, Error, ErrorKind};

/// Renders a conversation with a Hugging Face chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source` (Jinja) with the functions HF templates expect.
    pub fn new(source: &str, bos: String, eos: String) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string())
            .context("the file's chat template does not compile")?;
        Ok(ChatTemplate { env, bos, eos })
    }

    /// The prompt text for `messages` (role/content objects), ready for the assistant's turn.
    pub fn render(&self, messages: &[serde_json::Value]) -> Result<String> {
        let t = self.env.get_template("chat")?;
        Ok(t.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })?)
    }
}
