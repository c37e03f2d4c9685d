//! The diagrams must name every actor and message type the code has, and the actor view
//! must not name an actor the code does not have.

use std::collections::BTreeSet;
use std::path::Path;

fn rust_sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).expect("read source"));
        }
    }
}

/// The identifier that follows `marker` on each line containing it.
fn names_after(text: &str, marker: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(marker).nth(1))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Actors (`impl Actor for X`) and messages (`#[derive(.. Message ..)]` or `impl Message for X`).
fn code_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut sources = Vec::new();
    rust_sources(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
        &mut sources,
    );
    let mut actors = BTreeSet::new();
    let mut messages = BTreeSet::new();
    for src in &sources {
        actors.extend(names_after(src, "impl Actor for "));
        messages.extend(names_after(src, "impl Message for "));
        let mut derive_message = false;
        for line in src.lines() {
            let t = line.trim();
            if t.starts_with("#[derive(") && t.contains("Message") {
                derive_message = true;
            } else if derive_message && (t.starts_with("pub struct ") || t.starts_with("struct ")) {
                let name = t.trim_start_matches("pub ").trim_start_matches("struct ");
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                messages.insert(name);
                derive_message = false;
            } else if !t.starts_with("#[") && !t.starts_with("///") {
                derive_message = false;
            }
        }
    }
    (actors, messages)
}

fn diagrams_text() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("diagrams");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("diagrams/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "mmd") {
            text.push_str(&std::fs::read_to_string(&path).expect("read diagram"));
        }
    }
    text
}

fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric()) && !after.is_some_and(|c| c.is_alphanumeric())
    })
}

#[test]
fn every_actor_and_message_in_the_code_is_in_a_diagram() {
    let (actors, messages) = code_names();
    assert!(
        actors.contains("Session") && actors.contains("DataChannel"),
        "scanner found {actors:?}"
    );
    assert!(
        messages.contains("TransferDone"),
        "scanner found {messages:?}"
    );
    let text = diagrams_text();
    let missing: Vec<_> = actors
        .iter()
        .chain(messages.iter())
        .filter(|n| !mentions(&text, n))
        .collect();
    assert!(missing.is_empty(), "diagrams/ does not show: {missing:?}");
}

#[test]
fn actor_view_names_only_actors_that_exist() {
    let (actors, _) = code_names();
    let view =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("diagrams/actors.mmd"))
            .expect("actor view");
    // Node definitions look like `Name["..."]`; the CamelCase ones ending in a known role are actors.
    for line in view.lines() {
        let t = line.trim();
        if let Some((id, rest)) = t.split_once('[') {
            let id = id.trim();
            let is_actor_node =
                rest.starts_with('"') && !id.is_empty() && id.chars().all(char::is_alphanumeric);
            let known_non_actor = ["Workers", "IO", "Copy", "Who"];
            if is_actor_node && !known_non_actor.contains(&id) {
                assert!(
                    actors.contains(id),
                    "actors.mmd shows actor {id} that src/ does not have"
                );
            }
        }
    }
}
