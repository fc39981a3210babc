//! Folding a partial run's report (`--only`) into the full one, section by section.

/// The `## ` sections of a report, in order, each with its heading line; the text
/// before the first is the header.
fn sections(md: &str) -> (String, Vec<(String, String)>) {
    let mut header = String::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in md.lines() {
        if line.starts_with("## ") {
            out.push((line.to_owned(), String::new()));
        }
        let body = match out.last_mut() {
            Some((_, body)) => body,
            None => &mut header,
        };
        body.push_str(line);
        body.push('\n');
    }
    (header, out)
}

/// A partial run's report (`--only`) folded into the full report `old`: each section it
/// measured replaces the old one of that heading (or joins before the goals), with
/// `note` (which run measured it) under the heading; goal lines are replaced one by
/// one; every other section of `old` stays as it was.
pub fn merge(old: &str, new: &str, note: &str) -> String {
    let (header, mut kept) = sections(old);
    let (_, fresh) = sections(new);
    for (heading, body) in fresh {
        if heading == "## Goals" {
            let goal = |l: &str| l.split("**").next().unwrap_or(l).to_owned();
            let new_goals: Vec<&str> = body.lines().filter(|l| l.starts_with("- ")).collect();
            let entry = match kept.iter_mut().find(|(h, _)| *h == heading) {
                Some(e) => e,
                None => {
                    kept.push((heading.clone(), format!("{heading}\n\n\n")));
                    kept.last_mut().expect("just pushed")
                }
            };
            let mut lines: Vec<String> = entry
                .1
                .lines()
                .filter(|l| l.starts_with("- "))
                .map(str::to_owned)
                .collect();
            for g in new_goals {
                match lines.iter_mut().find(|l| goal(l) == goal(g)) {
                    Some(l) => *l = g.to_owned(),
                    None => lines.push(g.to_owned()),
                }
            }
            entry.1 = format!("{heading}\n\n{}\n\n", lines.join("\n"));
            continue;
        }
        let body = body.replacen(
            &format!("{heading}\n\n"),
            &format!("{heading}\n\n{note}\n\n"),
            1,
        );
        match kept.iter_mut().find(|(h, _)| *h == heading) {
            Some(e) => e.1 = body,
            None => {
                let at = kept
                    .iter()
                    .position(|(h, _)| h == "## Goals" || h == "## Parts that failed")
                    .unwrap_or(kept.len());
                kept.insert(at, (heading, body));
            }
        }
    }
    let mut out = header;
    for (_, body) in kept {
        out.push_str(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_run_replaces_only_its_sections() {
        let old = "# ipipd benchmarks\n\nCommand: `./bench.sh`\n\n## A\n\nold a\n\n## B\n\nold b\n\n## Goals\n\n- Goal a: **met** (1).\n- Goal b: **met** (2).\n\n";
        let new = "# ipipd benchmarks\n\nCommand: `./bench.sh --only b,c`\n\n## B\n\nnew b\n\n## C\n\nnew c\n\n## Goals\n\n- Goal b: **missed** (3).\n- Goal c: **met** (4).\n\n";
        let md = merge(old, new, "(run X)");
        assert_eq!(
            md,
            "# ipipd benchmarks\n\nCommand: `./bench.sh`\n\n## A\n\nold a\n\n## B\n\n(run X)\n\nnew b\n\n## C\n\n(run X)\n\nnew c\n\n## Goals\n\n- Goal a: **met** (1).\n- Goal b: **missed** (3).\n- Goal c: **met** (4).\n\n"
        );
    }
}
