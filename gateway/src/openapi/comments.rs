//! The comments of the `.proto` sources, kept in the descriptor set's source info, by element.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, FileDescriptor};

/// Leading comments by file and element path.
#[derive(Debug, Default)]
pub(super) struct Comments {
    by_element: HashMap<(String, Vec<i32>), String>,
}

impl Comments {
    /// Every leading comment in `pool` (none when its set was built without source info).
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        let mut by_element = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            for location in &info.location {
                let Some(text) = location.leading_comments.as_deref().map(tidy) else {
                    continue;
                };
                if !text.is_empty() {
                    by_element.insert((file.name().to_owned(), location.path.clone()), text);
                }
            }
        }
        Self { by_element }
    }

    /// The comment on the element at `path` of `file`.
    pub(super) fn of(&self, file: &FileDescriptor, path: &[i32]) -> Option<&str> {
        self.by_element
            .get(&(file.name().to_owned(), path.to_vec()))
            .map(String::as_str)
    }
}

/// A comment without the space after each `//`, and without blank lines around it.
fn tidy(raw: &str) -> String {
    raw.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}
