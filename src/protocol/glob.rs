//! Glob patterns in the last component of a LIST or NLST argument (`NLST *.txt`, what `mget`
//! sends), matched as vsftpd, ProFTPD and Pure-FTPd do. Pure: a pattern and a name in, a yes or
//! no out. Only one directory's names are ever matched: a pattern in any other component is an
//! ordinary name, so no pattern walks a tree.

/// The longest glob pattern matched; a longer last component is taken literally.
pub const MAX_PATTERN_LEN: usize = 255;

/// Whether a path's last component is a glob pattern: it has `*`, `?` or `[`, or one of them
/// quoted with `\\` (`\\[x]` names the file `[x]`).
pub fn has_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// Matches one name against a shell glob (`*`, `?`, `[abc]`, `[a-z]`, `[!x]` or `[^x]`, and `\`
/// to quote the next character), as vsftpd, ProFTPD and Pure-FTPd do for LIST/NLST. A leading
/// `.` must be matched explicitly, as in the shell: `*` does not match `.hidden`.
/// SECURITY: iterative, remembering only the last `*` (no recursion): the time is bounded by
/// pattern length times name length whatever the pattern, so no pattern can make it explode.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if n.first() == Some(&'.') && p.first() != Some(&'.') {
        return false;
    }
    let (mut pi, mut ni) = (0, 0);
    // After the last `*`: where the pattern resumes, and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match_class(&p, pi, n[ni]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(pi + 2),
            Some(&c) => (c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((after_star, tried))) => {
                // Let the last `*` swallow one more character and try again from there.
                pi = after_star;
                ni = tried + 1;
                star = Some((after_star, tried + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at `p[start]` against `c`: the pattern index after the class if it matches.
/// An unterminated `[` is a literal `[`.
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        let lo = p[i];
        if lo == ']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            matched |= (lo..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    (c == '[').then_some(start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        let cases = [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.bak", false),
            ("*.txt", ".hidden.txt", false),
            (".*", ".hidden", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]*", "banana", true),
            ("[!ab]*", "banana", false),
            ("[^ab]*", "cherry", true),
            ("file[0-9].bin", "file7.bin", true),
            ("file[0-9].bin", "fileX.bin", false),
            ("[]x]", "]", true),
            ("[a-]", "-", true),
            ("a[b", "a[b", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("*", "", true),
            ("**a**", "xxa", true),
            ("*a*b*c", "aXbYc", true),
            ("*a*b*c", "aXbYcZ", false),
            ("ünï*", "ünïcode", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern:?} vs {name:?}");
        }
        assert!(has_glob("*.txt") && has_glob("a?") && has_glob("[x]"));
        assert!(!has_glob("plain") && has_glob("\\*"));
    }

    #[test]
    fn a_hostile_pattern_costs_at_most_pattern_times_name() {
        // Exponential for a naive recursive matcher; linear passes here.
        let pattern = format!("{}b", "*a".repeat(100));
        let name = "a".repeat(250);
        let started = std::time::Instant::now();
        assert!(!glob_match(&pattern, &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
