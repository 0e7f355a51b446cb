//! The documentation reads offline and from any clone: every link of README.md and docs/ is
//! relative and lands on a file, folder or heading of this repository, and the README stays short
//! enough to read top-down.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The README is the front page; everything longer belongs in docs/.
const README_MAX_LINES: usize = 200;

/// The repository root: the `agora` package lives one level below it.
fn repository_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize()
        .expect("the repository root above the agora package exists")
}

/// README.md and every Markdown file under docs/, sorted so failures read the same each run.
fn documentation_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        let entries = fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("a readable folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn parser(text: &str) -> Parser<'_> {
    Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH)
}

/// A heading's anchor as GitHub makes it: lowercase, spaces to `-`, every other character but
/// letters, digits, `-` and `_` dropped.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown text offers: one per heading, a repeated slug numbered `-1`, `-2`, ...
/// as GitHub numbers it.
fn anchors(text: &str) -> Vec<String> {
    let mut anchors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    for event in parser(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let slug = github_slug(&heading.take().unwrap_or_default());
                let count = seen.entry(slug.clone()).or_insert(0);
                anchors.push(if *count == 0 {
                    slug
                } else {
                    format!("{slug}-{count}")
                });
                *count += 1;
            }
            _ => {}
        }
    }
    anchors
}

/// Every link and image target of a Markdown text, in order.
fn link_targets(text: &str) -> Vec<String> {
    parser(text)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// Whether a target leaves the repository by its form alone: a scheme (`https:`, `mailto:`),
/// a network path (`//host`) or a path from the file system's root.
fn is_absolute(target: &str) -> bool {
    let scheme = target.split_once(':').is_some_and(|(scheme, _)| {
        scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    scheme || target.starts_with('/')
}

/// What is wrong with each link of `text`, the Markdown file at `file` inside `root`: one line
/// per broken link, naming the file and the link.
fn broken_links(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let folder = file.parent().unwrap_or(root);
    let mut problems = Vec::new();
    for target in link_targets(text) {
        let problem = |why: &str| format!("{shown}: link `{target}` {why}");
        if is_absolute(&target) {
            problems.push(problem(
                "is absolute; link a file of the repository instead",
            ));
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            folder.join(path)
        };
        let Ok(resolved) = resolved.canonicalize() else {
            problems.push(problem("names a file or folder that does not exist"));
            continue;
        };
        if !resolved.starts_with(root) {
            problems.push(problem("leaves the repository"));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        let headings = if resolved.extension().is_some_and(|ext| ext == "md") {
            fs::read_to_string(&resolved)
                .map(|target_text| anchors(&target_text))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if !headings.iter().any(|h| h == anchor) {
            problems.push(problem("points at an anchor that matches no heading"));
        }
    }
    problems
}

#[test]
fn every_link_of_the_readme_and_docs_is_relative_and_resolves_inside_the_repository() {
    let root = repository_root();
    let files = documentation_files(&root);
    assert!(files.len() > 1, "docs/ holds the pages the README links to");
    let problems: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            broken_links(&root, file, &text)
        })
        .collect();
    assert!(
        problems.is_empty(),
        "broken links in the documentation:\n{}",
        problems.join("\n")
    );
}

/// The top-level folders a path named in the docs can start with.
const TOP_LEVEL: [&str; 10] = [
    "agora/",
    "crates/",
    "deploy/",
    "docs/",
    "gateway/",
    "k8s/",
    "proto/",
    "scripts/",
    "services/",
    "tests/",
];

/// Paths the docs name that are generated on a machine, never committed (git-ignored).
const GENERATED: [&str; 1] = ["deploy/secrets/"];

/// Repository paths named as inline code (`services/order/src/saga.rs`) that do not exist:
/// code spans are not links, so a moved file would otherwise leave its old name behind. Spans
/// with placeholders or patterns (`<svc>`, `*`, `{a,b}`) are not paths and are skipped.
fn missing_paths(root: &Path, text: &str) -> Vec<String> {
    parser(text)
        .filter_map(|event| match event {
            Event::Code(code) => Some(code.to_string()),
            _ => None,
        })
        .filter(|code| TOP_LEVEL.iter().any(|top| code.starts_with(top)))
        .filter(|code| !code.contains(['<', '*', '{', ' ', '$']))
        .filter(|code| {
            !GENERATED
                .iter()
                .any(|generated| code.starts_with(generated))
        })
        .filter(|code| !root.join(code.trim_end_matches(['.', ','])).exists())
        .collect()
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let root = repository_root();
    let problems: Vec<String> = documentation_files(&root)
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let name = file
                .strip_prefix(&root)
                .unwrap_or(file)
                .display()
                .to_string();
            missing_paths(&root, &text)
                .into_iter()
                .map(move |path| format!("{name}: `{path}`"))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "paths named in the documentation that do not exist:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_moved_file_named_in_the_docs_is_reported() {
    let root = repository_root();
    let text = "The saga is `services/order/src/saga.rs`; it was `services/order/src/gone.rs`, \
                and each service has `services/<svc>/src/lib.rs`.";
    assert_eq!(missing_paths(&root, text), ["services/order/src/gone.rs"]);
}

#[test]
fn the_readme_is_under_200_lines() {
    let readme = fs::read_to_string(repository_root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines; move detail to docs/ to keep it under {README_MAX_LINES}"
    );
}

#[test]
fn headings_become_anchors_by_github_slug_rules() {
    let text = "# The REST edge (`gateway/`)\n\n## Faults under load: `scripts/chaos.sh`\n\n\
                ## Notes\n\n## Notes\n\n### snake_case and kebab-case\n";
    assert_eq!(
        anchors(text),
        [
            "the-rest-edge-gateway",
            "faults-under-load-scriptschaossh",
            "notes",
            "notes-1",
            "snake_case-and-kebab-case",
        ]
    );
}

#[test]
fn links_that_leave_the_repository_or_miss_their_target_are_reported_with_file_and_link() {
    let root = repository_root();
    let file = root.join("README.md");
    let text = "[a](https://example.com) [b](//example.com/x) [c](/etc/passwd) \
                [d](mailto:someone@example.com) [e](docs/nowhere.md) [f](../outside) \
                [g](docs/testing.md#no-such-heading) ![h](missing.png) <https://example.org> \
                [ok](docs/testing.md#ci) [ok too](proto/) [self](#a-short-tour)";
    let problems = broken_links(&root, &file, text);
    let named: Vec<&str> = problems
        .iter()
        .filter_map(|p| p.split('`').nth(1))
        .collect();
    assert_eq!(
        named,
        [
            "https://example.com",
            "//example.com/x",
            "/etc/passwd",
            "mailto:someone@example.com",
            "docs/nowhere.md",
            "../outside",
            "docs/testing.md#no-such-heading",
            "missing.png",
            "https://example.org",
        ],
        "{problems:#?}"
    );
    assert!(problems.iter().all(|p| p.starts_with("README.md: link `")));
}
