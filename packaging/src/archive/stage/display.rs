//! Paths of the tree being staged, shown in messages.

/// The first levels and the last of a deep path, for a message.
pub(super) fn abbreviate(components: &[String]) -> String {
    match components {
        [first, second, third, .., last] if components.len() > 4 => {
            format!("{first}/{second}/{third}/…/{last}")
        }
        _ => components.join("/"),
    }
}

pub(super) fn join_display(folder: &[String], name: &str) -> String {
    let mut shown = folder.join("/");
    if !shown.is_empty() {
        shown.push('/');
    }
    shown.push_str(name);
    shown
}
