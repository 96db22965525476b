//! Applies a [`Lab`] plan to the machine: one `ip -batch` for the namespaces, sysctls written
//! from a thread inside each namespace, then one `ip -batch` per namespace in plan order. A lab
//! of a few nodes is built in a few tens of milliseconds.

use std::process::{Command, Stdio};

use anyhow::Context;
use svcnet_node::netns;

use crate::plan::Lab;

/// Creates every namespace of the lab and its links, addresses and routes.
pub fn build(lab: &Lab) -> anyhow::Result<()> {
    let adds: Vec<String> = lab
        .namespaces
        .iter()
        .map(|ns| format!("netns add {}", ns.name))
        .collect();
    netns::ip_batch(None, &adds).context("creating the lab's network namespaces")?;
    for ns in &lab.namespaces {
        write_sysctls(&ns.name, &ns.sysctls)?;
    }
    for ns in &lab.namespaces {
        netns::ip_batch(Some(&ns.name), &ns.commands)?;
    }
    Ok(())
}

/// Writes `/proc/sys/<key>` inside the namespace: /proc/sys/net follows the network namespace
/// of the thread that opens it, so a thread that entered the namespace sees the namespace's own.
pub fn write_sysctls(namespace: &str, sysctls: &[(&'static str, &'static str)]) -> anyhow::Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let owned: Vec<(&'static str, &'static str)> = sysctls.to_vec();
    netns::run_in(namespace, move || -> std::io::Result<()> {
        for (key, value) in owned {
            std::fs::write(format!("/proc/sys/{key}"), value)?;
        }
        Ok(())
    })?
    .with_context(|| format!("setting sysctls in {namespace}"))
}

/// A metric for this lab's host routes: derived from the prefix so that it is stable, and moved
/// past metrics that another lab already holds for the same ranges.
pub fn pick_route_metric(prefix: &str, cidrs: &[&str]) -> anyhow::Result<u32> {
    let taken = taken_metrics(cidrs)?;
    let base = 3000 + (crate::fnv1a(prefix.as_bytes()) % 4000) as u32;
    Ok((base..).find(|m| !taken.contains(m)).expect("a free metric exists"))
}

/// Metrics of the host's `unreachable` routes for any of `cidrs`.
fn taken_metrics(cidrs: &[&str]) -> anyhow::Result<Vec<u32>> {
    let output = Command::new("ip")
        .args(["-4", "route", "show", "type", "unreachable"])
        .output()
        .context("starting ip (is iproute2 installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(parse_unreachable_metrics(&text, cidrs))
}

/// From `ip route show type unreachable` lines (`unreachable 10.244.0.0/16 metric 3123`).
pub fn parse_unreachable_metrics(text: &str, cidrs: &[&str]) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let cidr = words.get(1)?;
            if !cidrs.contains(cidr) {
                return None;
            }
            let at = words.iter().position(|w| *w == "metric")?;
            words.get(at + 1)?.parse().ok()
        })
        .collect()
}

/// Adds the host's `unreachable` routes for the lab's ranges, one at a time: when one fails (say,
/// another lab took the same metric a moment ago), the routes added so far are removed again and
/// nothing of another lab is touched.
pub fn add_host_routes(cidrs: &[String], metric: u32) -> anyhow::Result<()> {
    for (i, cidr) in cidrs.iter().enumerate() {
        let metric_text = metric.to_string();
        let added = netns::ip(&["route", "add", "unreachable", cidr, "metric", &metric_text]);
        if let Err(error) = added {
            delete_host_routes(&cidrs[..i], metric);
            return Err(error.context("adding the host's unreachable routes for the lab"));
        }
    }
    Ok(())
}

/// Removes them again; routes already gone are fine.
pub fn delete_host_routes(cidrs: &[String], metric: u32) {
    let lines: Vec<String> = cidrs
        .iter()
        .map(|cidr| format!("route del unreachable {cidr} metric {metric}"))
        .collect();
    force_batch(None, &lines);
}

/// `ip -force -batch`: runs every line even when some fail (things already removed).
pub fn force_batch(namespace: Option<&str>, lines: &[String]) {
    use std::io::Write;
    if lines.is_empty() {
        return;
    }
    let mut command = Command::new("ip");
    if let Some(ns) = namespace {
        command.args(["-n", ns]);
    }
    let child = command
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        tracing::warn!("cannot start ip");
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(lines.join("\n").as_bytes());
    }
    if let Ok(output) = child.wait_with_output() {
        let errors = String::from_utf8_lossy(&output.stderr);
        if !errors.trim().is_empty() {
            tracing::debug!(errors = %errors.trim(), "ip -force -batch");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_of_lab_ranges_only() {
        let text = "unreachable 10.244.0.0/16 metric 3123 \n\
                    unreachable 10.1.0.0/16 metric 5\n\
                    unreachable 203.0.113.0/24 metric 3124\n\
                    unreachable 10.96.0.0/12\n";
        let cidrs = ["10.244.0.0/16", "203.0.113.0/24", "10.96.0.0/12"];
        assert_eq!(parse_unreachable_metrics(text, &cidrs), [3123, 3124]);
    }
}
