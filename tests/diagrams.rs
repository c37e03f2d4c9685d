//! The diagrams in `diagrams/` and the code in `src/` must tell the same story.
//!
//! # What the diagrams may say, and how it is checked
//!
//! Every `diagrams/*.mmd` is a Mermaid `flowchart`, `sequenceDiagram` or `stateDiagram-v2`
//! (an optional `---` front-matter block comes first; `%%` lines are comments and are ignored).
//!
//! 1. **Actors are capitalised ids.** A flowchart node id, a flowchart subgraph id or a
//!    sequence-diagram participant id that starts with an upper-case letter names an actor: src/
//!    must have `impl Actor for Id`. Everything else (the client, the control I/O task, the copy
//!    loop, `main`) gets a lower-case id. State ids in a state diagram are free names.
//! 2. **Messages are written `Name(...)`.** Anywhere in a diagram, a capitalised identifier
//!    directly followed by `(` is a message type: src/ must have it as `#[derive(Message)]` or
//!    `impl Message for Name`. Only `Ok(`, `Err(` and `Some(` are exempt. On an arrow (a flowchart
//!    edge label `A -->|"..."| B`, a sequence message `A->>B: ...`, a state transition label) the
//!    message must be handled where the arrow ends: `impl Handler<Name> for B`, where B is the
//!    target participant, the target node's enclosing capitalised subgraph, or, in a state
//!    diagram, the actor named by its `%% owner: Actor` line.
//! 3. **Enum paths are real.** `Type::Variant` (both capitalised, the variant with a lower-case
//!    letter, like `SinkItem::StartTls`) must be a variant of an `enum Type` in src/.
//! 4. **Type names in prose are real.** Any identifier with two or more capitals and a lower-case
//!    letter (`FtpCodec`, `ReplySink`, `IPv4`) must occur as a word in src/, wherever it appears
//!    in a diagram (labels, notes, node text); state ids are exempt.
//! 5. **Shape rules that keep 1-4 checkable.** Flowchart nodes are declared on their own line
//!    (`id["text"]`, `id(["text"])`...), edges are `a -->|"label"| b` (or `-.->`, `==>`, `---`,
//!    `-.-`, label optional) between declared ids, one edge per line; sequence participants are
//!    declared with `participant` or `actor` before use.
//!
//! In the other direction, `diagrams/actors.mmd` (the actor view) must show every actor of src/
//! as a node and every `impl Handler<M> for A` as an edge into A labelled `M(...)`, so every
//! message appears with its direction.
//!
//! Finally, every `.mmd` has an `.svg` beside it whose first line is
//! `<!-- source-sha256: HEX -->`, the sha256 of the source it was rendered from
//! (`diagrams/render.sh` writes it): editing a source without re-rendering fails here.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The code side.

/// What src/ declares, as far as the diagrams care.
struct Code {
    actors: BTreeSet<String>,
    messages: BTreeSet<String>,
    /// `(message, actor)` for every `impl Handler<message> for actor`.
    handlers: BTreeSet<(String, String)>,
    /// Every `enum` and its variants.
    enums: BTreeMap<String, BTreeSet<String>>,
    /// Every identifier that occurs anywhere in src/, comments included.
    words: BTreeSet<String>,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s` (possibly empty).
fn leading_ident(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    &s[..end]
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_ident_char)
}

fn capitalised(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
}

/// The identifier that follows `marker` on a line containing it.
fn ident_after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.split_once(marker)?.1;
    Some(leading_ident(rest)).filter(|n| !n.is_empty())
}

fn scan_code(sources: &[String]) -> Code {
    let mut code = Code {
        actors: BTreeSet::new(),
        messages: BTreeSet::new(),
        handlers: BTreeSet::new(),
        enums: BTreeMap::new(),
        words: BTreeSet::new(),
    };
    for src in sources {
        code.words.extend(
            src.split(|c: char| !is_ident_char(c))
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
        );
        let lines: Vec<&str> = src.lines().collect();
        let mut derives_message = false;
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if let Some(name) = ident_after(t, "impl Actor for ") {
                code.actors.insert(name.to_owned());
            }
            if let Some(name) = ident_after(t, "impl Message for ") {
                code.messages.insert(name.to_owned());
            }
            if let (Some(msg), Some(actor)) =
                (ident_after(t, "impl Handler<"), ident_after(t, "> for "))
            {
                code.handlers.insert((msg.to_owned(), actor.to_owned()));
            }
            // `#[derive(.., Message, ..)]`, then attributes and doc comments, then the struct.
            if let Some(list) = t.strip_prefix("#[derive(") {
                derives_message = list
                    .trim_end_matches(")]")
                    .split(',')
                    .any(|d| d.trim() == "Message");
            } else if derives_message {
                let decl = t
                    .trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ");
                if let Some(rest) = decl.strip_prefix("struct ") {
                    code.messages.insert(leading_ident(rest).to_owned());
                    derives_message = false;
                } else if !t.starts_with("#[") && !t.starts_with("///") {
                    derives_message = false;
                }
            }
            // `enum Name {`: its variants are the lines one level deeper, up to its `}`.
            let decl = t
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(rest) = decl.strip_prefix("enum ") {
                let name = leading_ident(rest).to_owned();
                let indent = line.len() - line.trim_start().len();
                let mut variants = BTreeSet::new();
                for inner in &lines[i + 1..] {
                    let inner_indent = inner.len() - inner.trim_start().len();
                    let it = inner.trim();
                    if it == "}" && inner_indent == indent {
                        break;
                    }
                    if inner_indent != indent + 4 {
                        continue;
                    }
                    let v = leading_ident(it);
                    let after = &it[v.len()..];
                    let is_variant = capitalised(v)
                        && (after.is_empty()
                            || after.starts_with('(')
                            || after.starts_with(',')
                            || after.starts_with(" {")
                            || after.starts_with(" ="));
                    if is_variant {
                        variants.insert(v.to_owned());
                    }
                }
                code.enums.entry(name).or_default().extend(variants);
            }
        }
    }
    code
}

fn code() -> Code {
    let mut sources = Vec::new();
    rust_sources(&manifest_dir().join("src"), &mut sources);
    scan_code(&sources)
}

// ---------------------------------------------------------------------------------------------
// The diagram side.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flowchart,
    Sequence,
    State,
}

/// One arrow: where it starts and ends, and its label.
#[derive(Debug)]
struct Arrow {
    to: String,
    label: String,
    line: usize,
}

/// A diagram read with the conventions above.
#[derive(Debug)]
struct Diagram {
    kind: Kind,
    /// Node, subgraph or participant ids, with the line that declares them.
    ids: BTreeMap<String, usize>,
    /// Flowchart nodes inside a capitalised (actor) subgraph: node -> actor.
    inside: BTreeMap<String, String>,
    arrows: Vec<Arrow>,
    /// Ids a state diagram gives its states (exempt from rule 4).
    states: BTreeSet<String>,
    /// The actor a state diagram belongs to (`%% owner: Actor`).
    owner: Option<String>,
    /// Non-comment lines, for the rules that look at all text.
    text: Vec<(usize, String)>,
    problems: Vec<String>,
}

const FLOW_ARROWS: [&str; 5] = ["-.->", "-->", "==>", "---", "-.-"];
const SEQ_ARROWS: [&str; 8] = ["-->>", "->>", "--x", "-x", "--)", "-)", "-->", "->"];
const SEQ_KEYWORDS: [&str; 17] = [
    "Note",
    "note",
    "loop",
    "alt",
    "else",
    "opt",
    "par",
    "and",
    "end",
    "rect",
    "critical",
    "break",
    "activate",
    "deactivate",
    "autonumber",
    "title",
    "box",
];

/// The earliest of `arrows` in `s` (the longest at that position): (index, arrow).
fn find_arrow<'a>(s: &str, arrows: &[&'a str]) -> Option<(usize, &'a str)> {
    arrows
        .iter()
        .filter_map(|a| s.find(a).map(|i| (i, *a)))
        .min_by_key(|(i, a)| (*i, std::cmp::Reverse(a.len())))
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_diagram(name: &str, source: &str) -> Diagram {
    let mut d = Diagram {
        kind: Kind::Flowchart,
        ids: BTreeMap::new(),
        inside: BTreeMap::new(),
        arrows: Vec::new(),
        states: BTreeSet::new(),
        owner: None,
        text: Vec::new(),
        problems: Vec::new(),
    };
    let mut lines = source
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();
    // Front matter.
    if lines.peek().is_some_and(|(_, l)| l.trim() == "---") {
        lines.next();
        for (_, l) in lines.by_ref() {
            if l.trim() == "---" {
                break;
            }
        }
    }
    let mut kind = None;
    let mut subgraphs: Vec<String> = Vec::new();
    let mut in_note = false;
    // Endpoints to check once every declaration is known.
    let mut endpoints: Vec<(usize, String)> = Vec::new();
    for (n, raw) in lines {
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(comment) = t.strip_prefix("%%") {
            if let Some(owner) = comment.trim().strip_prefix("owner:") {
                d.owner = Some(owner.trim().to_owned());
            }
            continue;
        }
        d.text.push((n, t.to_owned()));
        let problem = |why: &str| format!("{name}:{n}: {why}: {t}");
        let Some(k) = kind else {
            kind = Some(if t.starts_with("flowchart") || t.starts_with("graph") {
                Kind::Flowchart
            } else if t.starts_with("sequenceDiagram") {
                Kind::Sequence
            } else if t.starts_with("stateDiagram") {
                Kind::State
            } else {
                d.problems
                    .push(problem("not a flowchart, sequence or state diagram"));
                return d;
            });
            d.kind = kind.unwrap_or(Kind::Flowchart);
            continue;
        };
        match k {
            Kind::Flowchart => {
                let first = t.split_whitespace().next().unwrap_or("");
                if ["classDef", "class", "style", "linkStyle", "direction"].contains(&first) {
                    continue;
                }
                if t == "end" {
                    subgraphs.pop();
                    continue;
                }
                if let Some(rest) = t.strip_prefix("subgraph ") {
                    let id = leading_ident(rest.trim_start());
                    if id.is_empty() {
                        d.problems.push(problem("a subgraph needs an id"));
                        continue;
                    }
                    d.ids.insert(id.to_owned(), n);
                    subgraphs.push(id.to_owned());
                    continue;
                }
                let id = leading_ident(t);
                let rest = &t[id.len()..];
                if id.is_empty() {
                    d.problems.push(problem("cannot read this line"));
                    continue;
                }
                if rest.starts_with(['[', '(', '{', '>']) {
                    d.ids.insert(id.to_owned(), n);
                    if let Some(actor) = subgraphs.iter().rev().find(|s| capitalised(s)) {
                        d.inside.insert(id.to_owned(), actor.clone());
                    }
                    continue;
                }
                let rest = rest.trim_start();
                let Some(arrow) = FLOW_ARROWS.iter().find(|a| rest.starts_with(**a)) else {
                    if rest.starts_with("--") || rest.starts_with("==") || rest.starts_with("-.") {
                        d.problems
                            .push(problem("write edge labels as a -->|\"label\"| b"));
                    } else {
                        d.problems.push(problem("cannot read this line"));
                    }
                    continue;
                };
                let mut after = rest[arrow.len()..].trim_start();
                let mut label = String::new();
                if let Some(l) = after.strip_prefix('|') {
                    match l.split_once('|') {
                        Some((text, tail)) => {
                            label = unquote(text).to_owned();
                            after = tail.trim_start();
                        }
                        None => {
                            d.problems.push(problem("unterminated edge label"));
                            continue;
                        }
                    }
                }
                if !is_ident(after) {
                    d.problems
                        .push(problem("an edge must end at one declared id (no chains)"));
                    continue;
                }
                endpoints.push((n, id.to_owned()));
                endpoints.push((n, after.to_owned()));
                d.arrows.push(Arrow {
                    to: after.to_owned(),
                    label,
                    line: n,
                });
            }
            Kind::Sequence => {
                let decl = t.strip_prefix("create ").unwrap_or(t);
                if let Some(rest) = decl
                    .strip_prefix("participant ")
                    .or_else(|| decl.strip_prefix("actor "))
                {
                    let id = rest.split_whitespace().next().unwrap_or("");
                    if !is_ident(id) {
                        d.problems.push(problem("a participant needs a plain id"));
                        continue;
                    }
                    d.ids.insert(id.to_owned(), n);
                    continue;
                }
                let first = leading_ident(t);
                if SEQ_KEYWORDS.contains(&first) {
                    continue;
                }
                let (head, label) = t.split_once(':').unwrap_or((t, ""));
                let Some((i, arrow)) = find_arrow(head, &SEQ_ARROWS) else {
                    d.problems.push(problem("cannot read this line"));
                    continue;
                };
                let from = head[..i].trim();
                let to = head[i + arrow.len()..]
                    .trim()
                    .trim_start_matches(['+', '-']);
                if !is_ident(from) || !is_ident(to) {
                    d.problems
                        .push(problem("a message needs plain participant ids"));
                    continue;
                }
                endpoints.push((n, from.to_owned()));
                endpoints.push((n, to.to_owned()));
                d.arrows.push(Arrow {
                    to: to.to_owned(),
                    label: label.trim().to_owned(),
                    line: n,
                });
            }
            Kind::State => {
                if in_note {
                    in_note = t != "end note";
                    continue;
                }
                if t.starts_with("note ") {
                    in_note = !t.contains(':');
                    continue;
                }
                let first = t.split_whitespace().next().unwrap_or("");
                if ["classDef", "class", "direction", "}"].contains(&first) {
                    continue;
                }
                if let Some(rest) = t.strip_prefix("state ") {
                    // `state "text" as Id` or `state Id {`
                    let id = match rest.rsplit_once(" as ") {
                        Some((_, id)) => id.trim(),
                        None => leading_ident(rest),
                    };
                    d.states.insert(id.to_owned());
                    continue;
                }
                let (head, label) = match t.split_once(" : ") {
                    Some((h, l)) => (h, l),
                    None => (t, ""),
                };
                match head.split_once("-->") {
                    Some((a, b)) => {
                        for s in [a.trim(), b.trim()] {
                            if s != "[*]" {
                                d.states.insert(s.to_owned());
                            }
                        }
                        d.arrows.push(Arrow {
                            to: String::new(),
                            label: label.trim().to_owned(),
                            line: n,
                        });
                    }
                    None if is_ident(head.trim()) => {
                        d.states.insert(head.trim().to_owned());
                    }
                    None => d.problems.push(problem("cannot read this line")),
                }
            }
        }
    }
    if kind.is_none() {
        d.problems.push(format!("{name}: empty diagram"));
    }
    for (n, id) in endpoints {
        if !d.ids.contains_key(&id) {
            d.problems
                .push(format!("{name}:{n}: {id} is used but never declared"));
        }
    }
    d
}

/// Every `Name(` in `text`: (name, whether it follows `::`).
fn calls(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices('(') {
        let before = &text[..i];
        let start = before
            .rfind(|c: char| !is_ident_char(c))
            .map_or(0, |p| p + 1);
        let name = &before[start..];
        if capitalised(name) {
            out.push((name, before[..start].ends_with("::")));
        }
    }
    out
}

/// Every `Type::Variant` in `text` with both parts capitalised and a lower-case letter in the
/// variant.
fn enum_paths(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("::") {
        let before = &text[..i];
        let start = before
            .rfind(|c: char| !is_ident_char(c))
            .map_or(0, |p| p + 1);
        let ty = &before[start..];
        let variant = leading_ident(&text[i + 2..]);
        if capitalised(ty) && capitalised(variant) && variant.chars().any(|c| c.is_lowercase()) {
            out.push((ty, variant));
        }
    }
    out
}

/// Identifiers with two or more capitals and a lower-case letter (`FtpCodec`, `IPv4`).
fn type_like_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_ident_char(c)).filter(|w| {
        capitalised(w)
            && w.chars().filter(|c| c.is_ascii_uppercase()).count() >= 2
            && w.chars().any(|c| c.is_ascii_lowercase())
    })
}

const PRELUDE: [&str; 3] = ["Ok", "Err", "Some"];

/// Diagram to code: rules 1 to 5 for one diagram.
fn check_diagram(name: &str, source: &str, code: &Code) -> Vec<String> {
    let d = parse_diagram(name, source);
    let mut problems = d.problems.clone();
    // Rule 1.
    for (id, n) in &d.ids {
        if capitalised(id) && !code.actors.contains(id) {
            problems.push(format!(
                "{name}:{n}: {id} is shown as an actor, but src/ has no `impl Actor for {id}`"
            ));
        }
    }
    if d.kind == Kind::State {
        match &d.owner {
            None => problems.push(format!("{name}: a state diagram needs `%% owner: Actor`")),
            Some(o) if !code.actors.contains(o) => {
                problems.push(format!("{name}: owner {o} is not an actor in src/"))
            }
            Some(_) => {}
        }
    }
    for (n, line) in &d.text {
        // Rule 2, existence.
        for (call, after_path) in calls(line) {
            if !after_path && !PRELUDE.contains(&call) && !code.messages.contains(call) {
                problems.push(format!(
                    "{name}:{n}: {call}(...) is written as a message, but src/ has no message {call}"
                ));
            }
        }
        // Rule 3.
        for (ty, variant) in enum_paths(line) {
            let known = code.enums.get(ty).is_some_and(|v| v.contains(variant));
            if !known {
                problems.push(format!(
                    "{name}:{n}: {ty}::{variant} is not a variant of an enum {ty} in src/"
                ));
            }
        }
        // Rule 4.
        for word in type_like_words(line) {
            if !d.states.contains(word) && !code.words.contains(word) {
                problems.push(format!("{name}:{n}: {word} does not occur in src/"));
            }
        }
    }
    // Rule 2, direction.
    for arrow in &d.arrows {
        for (msg, after_path) in calls(&arrow.label) {
            if after_path || PRELUDE.contains(&msg) || !code.messages.contains(msg) {
                continue;
            }
            let target = match d.kind {
                Kind::State => d.owner.clone(),
                Kind::Sequence => Some(arrow.to.clone()).filter(|t| capitalised(t)),
                Kind::Flowchart => Some(arrow.to.clone())
                    .filter(|t| capitalised(t))
                    .or_else(|| d.inside.get(&arrow.to).cloned()),
            };
            match target {
                None => problems.push(format!(
                    "{name}:{}: message {msg} goes to {}, which is not an actor",
                    arrow.line, arrow.to
                )),
                Some(actor) if !code.handlers.contains(&(msg.to_owned(), actor.clone())) => {
                    problems.push(format!(
                        "{name}:{}: message {msg} goes to {actor}, but src/ has no \
                         `impl Handler<{msg}> for {actor}`",
                        arrow.line
                    ))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// Code to diagram: the actor view shows every actor and every handler as an edge.
fn check_actor_view(source: &str, code: &Code) -> Vec<String> {
    let d = parse_diagram("actors.mmd", source);
    let mut problems = Vec::new();
    for actor in &code.actors {
        if !d.ids.contains_key(actor) {
            problems.push(format!(
                "actors.mmd does not show the actor {actor} (a node with id {actor})"
            ));
        }
    }
    let mut shown = BTreeSet::new();
    for arrow in &d.arrows {
        let target = d.inside.get(&arrow.to).unwrap_or(&arrow.to);
        for (msg, after_path) in calls(&arrow.label) {
            if !after_path {
                shown.insert((msg.to_owned(), target.clone()));
            }
        }
    }
    for (msg, actor) in &code.handlers {
        if !shown.contains(&(msg.clone(), actor.clone())) {
            problems.push(format!(
                "actors.mmd has no edge into {actor} labelled {msg}(...), \
                 but src/ has `impl Handler<{msg}> for {actor}`"
            ));
        }
    }
    for msg in &code.messages {
        if !shown.iter().any(|(m, _)| m == msg) {
            problems.push(format!("actors.mmd does not show the message {msg}"));
        }
    }
    problems
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SVG was rendered from exactly this source, and rendered without an error.
fn check_svg(source: &[u8], svg: &str) -> Result<(), String> {
    let want = sha256_hex(source);
    let first = svg.lines().next().unwrap_or("");
    let got = first
        .strip_prefix("<!-- source-sha256: ")
        .and_then(|r| r.strip_suffix(" -->"))
        .ok_or("its first line is not `<!-- source-sha256: HEX -->`")?;
    if got != want {
        return Err(format!(
            "it was rendered from another version of the source (source-sha256 {got}, \
             the source is {want}): run diagrams/render.sh"
        ));
    }
    if !svg.contains("<svg") {
        return Err("it has no <svg> element".into());
    }
    if svg.contains("Syntax error in text") || svg.contains("Parse error") {
        return Err("it shows a Mermaid error".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn diagrams_dir() -> PathBuf {
    manifest_dir().join("diagrams")
}

/// `(file name, text)` of every `.mmd`, sorted.
fn sources() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(diagrams_dir())
        .expect("diagrams/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mmd"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read diagram"))
        })
        .collect();
    out.sort();
    out
}

fn actor_view() -> String {
    std::fs::read_to_string(diagrams_dir().join("actors.mmd")).expect("the actor view exists")
}

#[test]
fn the_scanner_sees_the_code() {
    let code = code();
    for actor in [
        "Listener",
        "Session",
        "DataChannel",
        "FileStore",
        "AdminEndpoint",
    ] {
        assert!(code.actors.contains(actor), "actors: {:?}", code.actors);
    }
    for msg in [
        "Command",
        "Unparsable",
        "TransferDone",
        "OpenJail",
        "SessionStatus",
    ] {
        assert!(code.messages.contains(msg), "messages: {:?}", code.messages);
    }
    assert!(code
        .handlers
        .contains(&("Abort".to_owned(), "DataChannel".to_owned())));
    assert!(code.handlers.len() >= 25, "handlers: {:?}", code.handlers);
    assert!(code
        .enums
        .get("SinkItem")
        .is_some_and(|v| v.contains("StartTls") && v.contains("Close")));
    assert!(code
        .enums
        .get("Login")
        .is_some_and(|v| v.contains("LoggedIn")));
}

#[test]
fn diagrams_name_only_actors_and_messages_the_code_has() {
    let code = code();
    let all = sources();
    assert!(all.len() >= 9, "expected the nine views, found {all:?}");
    let problems: Vec<String> = all
        .iter()
        .flat_map(|(name, text)| check_diagram(name, text, &code))
        .collect();
    assert!(
        problems.is_empty(),
        "diagrams and code disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_actor_view_shows_every_actor_and_every_message_with_its_direction() {
    let problems = check_actor_view(&actor_view(), &code());
    assert!(
        problems.is_empty(),
        "the actor view is missing code:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_diagram_has_an_svg_rendered_from_its_current_source() {
    let dir = diagrams_dir();
    let mut problems = Vec::new();
    for (name, _) in sources() {
        let source = std::fs::read(dir.join(&name)).expect("read source");
        let svg_name = name.replace(".mmd", ".svg");
        match std::fs::read_to_string(dir.join(&svg_name)) {
            Err(_) => problems.push(format!("{svg_name} is missing: run diagrams/render.sh")),
            Ok(svg) => {
                if let Err(e) = check_svg(&source, &svg) {
                    problems.push(format!("{svg_name}: {e}"));
                }
            }
        }
    }
    for entry in std::fs::read_dir(&dir).expect("diagrams/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "svg") && !path.with_extension("mmd").exists() {
            problems.push(format!("{} has no source", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `text` with `from` replaced by `to`; `from` must be there (else this self-test needs updating).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "actors.mmd no longer contains {from:?}: update drift_between_diagrams_and_code_is_caught"
    );
    text.replace(from, to)
}

/// The checks above bite: each kind of drift, made on a copy of a real diagram, is reported.
#[test]
fn drift_between_diagrams_and_code_is_caught() {
    let code = code();
    let view = actor_view();
    let reported = |problems: &[String], needle: &str| problems.iter().any(|p| p.contains(needle));

    // A message renamed in a diagram: unknown in src/, and the real one is now missing.
    let renamed = edit(&view, "TransferDone(", "TransferFinished(");
    assert!(reported(
        &check_diagram("actors.mmd", &renamed, &code),
        "no message TransferFinished"
    ));
    assert!(reported(
        &check_actor_view(&renamed, &code),
        "labelled TransferDone"
    ));

    // An actor renamed in a diagram.
    let renamed = edit(&view, "FileStore", "FileStorage");
    assert!(reported(
        &check_diagram("actors.mmd", &renamed, &code),
        "no `impl Actor for FileStorage`"
    ));
    assert!(reported(
        &check_actor_view(&renamed, &code),
        "the actor FileStore"
    ));

    // A message drawn in the wrong direction.
    let turned = edit(
        &view,
        "Session -->|\"Abort()\"| DataChannel",
        "DataChannel -->|\"Abort()\"| Session",
    );
    assert!(reported(
        &check_diagram("actors.mmd", &turned, &code),
        "no `impl Handler<Abort> for Session`"
    ));

    // A type renamed in prose, and an enum variant that does not exist.
    let prose = edit(&view, "FtpCodec", "FtpDecoder");
    assert!(reported(
        &check_diagram("actors.mmd", &prose, &code),
        "FtpDecoder does not occur"
    ));
    let variant = edit(&view, "SinkItem::StartTls", "SinkItem::Upgrade");
    assert!(reported(
        &check_diagram("actors.mmd", &variant, &code),
        "SinkItem::Upgrade is not a variant"
    ));

    // A message the code has but the actor view forgot.
    let forgot = edit(&view, ",<br/>LoginEnded(ip, failed)", "");
    assert!(reported(
        &check_actor_view(&forgot, &code),
        "labelled LoginEnded"
    ));

    // A source edited after its SVG was rendered.
    let svg = std::fs::read_to_string(diagrams_dir().join("actors.svg")).expect("actors.svg");
    assert!(check_svg(view.as_bytes(), &svg).is_ok());
    let edited = edit(&view, "one per transfer", "one per transfer, short-lived");
    assert!(check_svg(edited.as_bytes(), &svg)
        .is_err_and(|e| e.contains("another version of the source")));

    // An actor and a message the code grows without the diagrams.
    let mut sources = Vec::new();
    rust_sources(&manifest_dir().join("src"), &mut sources);
    sources.push(
        "pub struct Janitor;\nimpl Actor for Janitor {}\n#[derive(Message)]\n#[rtype(result = \"()\")]\n\
         pub struct Sweep;\nimpl Handler<Sweep> for Janitor {}\n"
            .to_owned(),
    );
    let grown = scan_code(&sources);
    let problems = check_actor_view(&view, &grown);
    assert!(reported(&problems, "the actor Janitor"));
    assert!(reported(&problems, "the message Sweep"));
}
