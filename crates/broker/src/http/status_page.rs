//! The read-only status page at `/`: the cluster as this node sees it, rendered on the server
//! as plain HTML. A small inline script fetches the page again every two seconds, swaps the
//! content in and turns the byte and record totals into rates; nothing is loaded from
//! elsewhere, so it works with no network access.

use std::fmt::Write;

use crate::metrics::scrape::{GroupLag, Snapshot};
use crate::metrics::Metrics;
use crate::state::Shared;

/// Escapes text for HTML content and quoted attribute values (group ids and client-chosen
/// names may hold anything).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}\
header h1{font-size:20px;margin:0}header span{opacity:.85;font-size:14px}\
main{padding:16px 24px;max-width:1400px}\
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin-bottom:16px;padding:8px 16px 16px}\
h2{font-size:16px;margin:8px 0}\
table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}\
th{color:#5a6374;font-weight:600}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}.muted{color:#8a93a3}\
.rates{display:flex;gap:32px;font-size:15px}.rates b{font-size:20px;display:block}";

const SCRIPT: &str = r#"(function(){
  var prev=null;
  function human(n){var u=['','K','M','G','T'];var i=0;while(n>=1000&&i<u.length-1){n/=1000;i++;}return n.toFixed(i?1:0)+u[i];}
  function rates(doc){
    var t=doc.getElementById('totals');if(!t)return;
    var now={at:performance.now(),m:+t.dataset.messagesIn,bi:+t.dataset.bytesIn,bo:+t.dataset.bytesOut};
    if(prev&&now.at>prev.at){
      var s=(now.at-prev.at)/1000;
      document.getElementById('rate-messages-in').textContent=human(Math.max(0,(now.m-prev.m)/s))+'/s';
      document.getElementById('rate-bytes-in').textContent=human(Math.max(0,(now.bi-prev.bi)/s))+'B/s';
      document.getElementById('rate-bytes-out').textContent=human(Math.max(0,(now.bo-prev.bo)/s))+'B/s';
    }
    prev=now;
  }
  function refresh(){
    fetch(location.pathname,{cache:'no-store'}).then(function(r){return r.text();}).then(function(text){
      var doc=new DOMParser().parseFromString(text,'text/html');
      var fresh=doc.getElementById('content');
      if(fresh){document.getElementById('content').innerHTML=fresh.innerHTML;}
      document.getElementById('status').textContent='updated '+new Date().toLocaleTimeString();
      rates(document);
    }).catch(function(){document.getElementById('status').textContent='node unreachable; retrying';});
  }
  rates(document);
  setInterval(refresh,2000);
})();"#;

/// The whole page. `snapshot` is `None` while the node starts.
pub fn render(
    snapshot: Option<(&Shared, &Snapshot)>,
    metrics: &Metrics,
    ready: Result<(), String>,
) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let title = match snapshot {
        Some((shared, _)) => format!("rafka node {}", shared.node_id),
        None => "rafka".to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let readiness = match &ready {
        Ok(()) => "<span class=\"ok\">ready</span>".to_string(),
        Err(why) => format!("<span class=\"bad\">not ready: {}</span>", escape(why)),
    };
    let _ = write!(h, "<header><h1>{}</h1>{}", escape(&title), readiness);
    if let Some((shared, snap)) = snapshot {
        let roles = match (snap.is_broker, snap.is_controller) {
            (true, true) => "broker, controller",
            (true, false) => "broker",
            (false, _) => "controller",
        };
        let _ = write!(
            h,
            "<span>cluster {}</span><span>roles: {roles}</span>",
            escape(&shared.cluster_id)
        );
    }
    h.push_str("<span id=\"status\" class=\"muted\"></span></header><main id=\"content\">");
    match snapshot {
        None => h.push_str("<section><h2>Starting</h2><p>The node is recovering its logs and joining the metadata quorum.</p></section>"),
        Some((_, snap)) => {
            render_rates(&mut h, metrics);
            render_brokers(&mut h, snap);
            render_controllers(&mut h, snap);
            render_groups(&mut h, snap);
            render_topics(&mut h, snap);
        }
    }
    let _ = write!(h, "</main><script>{SCRIPT}</script></body></html>");
    h
}

fn render_rates(h: &mut String, metrics: &Metrics) {
    let (messages_in, bytes_in, bytes_out) = metrics.totals();
    let _ = write!(
        h,
        "<section><h2>Traffic on this node</h2><div id=\"totals\" class=\"rates\" data-messages-in=\"{messages_in}\" data-bytes-in=\"{bytes_in}\" data-bytes-out=\"{bytes_out}\">\
<div>records in<b id=\"rate-messages-in\">…</b><span class=\"muted\">{messages_in} in all</span></div>\
<div>bytes in<b id=\"rate-bytes-in\">…</b><span class=\"muted\">{bytes_in} in all</span></div>\
<div>bytes out<b id=\"rate-bytes-out\">…</b><span class=\"muted\">{bytes_out} in all</span></div></div></section>"
    );
}

fn render_brokers(h: &mut String, snap: &Snapshot) {
    h.push_str("<section><h2>Brokers</h2><table><tr><th>id</th><th>endpoints</th><th>rack</th><th>state</th></tr>");
    for b in snap.image.brokers() {
        let endpoints: Vec<String> = b
            .endpoints
            .iter()
            .map(|e| format!("{}://{}:{}", e.listener, e.host, e.port))
            .collect();
        let state = if b.fenced {
            "<span class=\"bad\">fenced</span>"
        } else if b.in_controlled_shutdown {
            "<span class=\"bad\">shutting down</span>"
        } else {
            "<span class=\"ok\">active</span>"
        };
        let me = if b.node_id == snap.node_id {
            " <span class=\"muted\">(this node)</span>"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr class=\"broker\" data-node=\"{id}\"><td>{id}{me}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            escape(&endpoints.join(", ")),
            escape(b.rack.as_deref().unwrap_or("")),
            id = b.node_id,
        );
    }
    h.push_str("</table></section>");
}

fn render_controllers(h: &mut String, snap: &Snapshot) {
    let q = &snap.quorum;
    let _ = write!(
        h,
        "<section><h2>Controllers</h2><p>metadata log: committed offset {}, epoch {}, applied here up to {}</p><table><tr><th>id</th><th>role</th><th class=\"num\">lag (records)</th></tr>",
        q.high_watermark, q.current_epoch, q.last_applied_offset
    );
    let mut voters = q.voters.clone();
    if voters.is_empty() && q.current_leader >= 0 {
        voters.push(q.current_leader);
    }
    for v in voters {
        let role = if v == q.current_leader {
            "<span class=\"ok\">active</span>"
        } else {
            "voter"
        };
        let lag = q
            .node_lag
            .iter()
            .find(|(n, _)| *n == v)
            .map_or("<span class=\"muted\">–</span>".to_string(), |(_, l)| {
                l.to_string()
            });
        let _ = write!(
            h,
            "<tr class=\"controller\" data-node=\"{v}\"><td>{v}</td><td>{role}</td><td class=\"num\">{lag}</td></tr>"
        );
    }
    h.push_str("</table></section>");
}

fn render_topics(h: &mut String, snap: &Snapshot) {
    h.push_str("<section><h2>Topics</h2><table><tr><th>topic</th><th class=\"num\">partition</th><th class=\"num\">leader</th><th>replicas</th><th>in sync</th><th class=\"num\">end offset here</th><th class=\"num\">size here (bytes)</th></tr>");
    let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    for t in snap.image.topics() {
        // Internal topics (`__consumer_offsets`, `__transaction_state`) get their summary line
        // only: fifty partition rows of them would push the user's topics off the screen.
        let internal = crate::group_coordinator::is_internal_topic(&t.name);
        let _ = write!(
            h,
            "<tr class=\"topic\" data-topic=\"{name}\"><td colspan=\"7\"><b>{name}</b> <span class=\"muted\">{} partitions{}</span></td></tr>",
            t.partitions.len(),
            if internal { ", internal" } else { "" },
            name = escape(&t.name),
        );
        if internal {
            continue;
        }
        for (index, p) in &t.partitions {
            let hosted = snap
                .partitions
                .iter()
                .find(|h| *h.topic == *t.name && h.partition == *index);
            let (end, size) = hosted.map_or(
                (
                    "<span class=\"muted\">–</span>".to_string(),
                    "<span class=\"muted\">–</span>".to_string(),
                ),
                |h| (h.log_end_offset.to_string(), h.size_bytes.to_string()),
            );
            let isr_class = if p.isr.len() < p.replicas.len() {
                "bad"
            } else {
                "ok"
            };
            let leader = if p.leader < 0 {
                "<span class=\"bad\">none</span>".to_string()
            } else {
                p.leader.to_string()
            };
            let _ = write!(
                h,
                "<tr class=\"partition\" data-topic=\"{}\" data-partition=\"{index}\"><td></td><td class=\"num\">{index}</td><td class=\"num\">{leader}</td><td>{}</td><td class=\"{isr_class}\">{}</td><td class=\"num\">{end}</td><td class=\"num\">{size}</td></tr>",
                escape(&t.name),
                list(&p.replicas),
                list(&p.isr),
            );
        }
    }
    h.push_str("</table></section>");
}

fn render_groups(h: &mut String, snap: &Snapshot) {
    h.push_str("<section><h2>Consumer groups <span class=\"muted\">(coordinated by this node)</span></h2><table><tr><th>group</th><th>topic</th><th class=\"num\">partition</th><th class=\"num\">committed</th><th class=\"num\">end</th><th class=\"num\">lag</th></tr>");
    for g in &snap.groups {
        let total: i64 = g
            .partitions
            .iter()
            .filter_map(|(_, _, c, e)| GroupLag::lag(*c, *e))
            .sum();
        let _ = write!(
            h,
            "<tr class=\"group\" data-group=\"{id}\"><td colspan=\"6\"><b>{id}</b> <span class=\"muted\">{} group, {}, {} member{}, total lag {total}</span></td></tr>",
            g.protocol,
            g.state,
            g.members.len(),
            if g.members.len() == 1 { "" } else { "s" },
            id = escape(&g.group_id),
        );
        for m in &g.members {
            let _ = write!(
                h,
                "<tr class=\"member\" data-group=\"{}\"><td></td><td colspan=\"5\" class=\"muted\">member {} (client {}, {})</td></tr>",
                escape(&g.group_id),
                escape(&m.member_id),
                escape(&m.client_id),
                escape(&m.client_host),
            );
        }
        for (topic, partition, committed, end) in &g.partitions {
            let (end_text, lag_text) = match (end, GroupLag::lag(*committed, *end)) {
                (Some(e), Some(l)) => (e.to_string(), l.to_string()),
                _ => ("?".to_string(), "?".to_string()),
            };
            let _ = write!(
                h,
                "<tr><td></td><td>{t}</td><td class=\"num\">{partition}</td><td class=\"num\">{committed}</td><td class=\"num\">{end_text}</td><td class=\"lag num\" data-group=\"{g}\" data-topic=\"{t}\" data-partition=\"{partition}\">{lag_text}</td></tr>",
                t = escape(topic),
                g = escape(&g.group_id),
            );
        }
    }
    if snap.groups.is_empty() {
        h.push_str("<tr><td colspan=\"6\" class=\"muted\">no groups</td></tr>");
    }
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_starting_node_renders_a_page() {
        let page = render(None, &Metrics::new(), Err("starting".into()));
        assert!(page.contains("not ready: starting"));
        assert!(page.ends_with("</html>"));
    }
}
