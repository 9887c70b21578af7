//! Chat templates as `edgelm chat` renders them, with arbitrary template text and messages.
//! Input: the template, then NUL-separated message contents (a leading "system" one when the
//! first content starts with '!', then user and assistant turns alternating).
#![no_main]

use edgelm_cli::template::ChatTemplate;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let Ok(t) = ChatTemplate::new(source, "<s>".into(), "</s>".into()) else {
        return;
    };
    let mut messages = Vec::new();
    let mut system = 0;
    for (i, c) in parts.enumerate() {
        let role = if i == 0 && c.starts_with('!') {
            system = 1;
            "system"
        } else if (i - system) % 2 == 0 {
            "user"
        } else {
            "assistant"
        };
        messages.push(json!({"role": role, "content": c}));
    }
    if messages.is_empty() {
        messages.push(json!({"role": "user", "content": "Hello!"}));
    }
    let _ = t.render(&messages);
});
