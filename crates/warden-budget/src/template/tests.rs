//! Table tests for header stripping, masking and the template tree.

use super::*;

#[track_caller]
fn check_header(line: &str, expected: &str) {
    assert_eq!(strip_header(line), expected, "line: {line}");
}

#[test]
fn headers_of_common_shapes() {
    check_header(
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
        "PacketResponder 1 for block blk_38865049064139660 terminating",
    );
    check_header(
        "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/x",
        "workerEnv.init() ok /etc/x",
    );
    check_header(
        "Jun 14 15:16:02 combo sshd(pam_unix)[19937]: check pass; user unknown",
        "check pass; user unknown",
    );
    check_header(
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        "Invalid user webmaster from 173.234.31.186",
    );
    check_header(
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
        "Notification time out: 3200",
    );
    check_header(
        "17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi",
        "Changing view acls to: yarn,curi",
    );
    check_header(
        "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b 113d 54fa - - -] 10.11.10.1 \"GET /v2 HTTP/1.1\" status: 200",
        "10.11.10.1 \"GET /v2 HTTP/1.1\" status: 200",
    );
    check_header(
        "Connection closed by 1.2.3.4",
        "Connection closed by 1.2.3.4",
    );
    // Shapes of Loghub systems that are not in the test data.
    check_header(
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
        "RAS KERNEL INFO instruction cache parity error corrected",
    );
    check_header(
        "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 RAS KERNEL FATAL data TLB error interrupt",
        "RAS KERNEL FATAL data TLB error interrupt",
    );
    check_header(
        "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
        "session closed for user root",
    );
    check_header(
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
    );
    check_header(
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
        "Step_LSC|30002312|onStandStepChanged 3579",
    );
    check_header(
        "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet",
        "IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet",
    );
    check_header(
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992}}",
        "printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992}}",
    );
    check_header(
        "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core",
        "CBS    Loaded Servicing Stack v6.1.7601.23505 with Core",
    );
    check_header(
        "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
        "chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
    );
    check_header(
        "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component is unavailable",
        "unix.hw state_change.unavailable 1077804742 1 Component State Change: Component is unavailable",
    );
    check_header(
        "2024-01-01 12:00:00,123 [main] INFO com.example.Service - started in 5 ms",
        "started in 5 ms",
    );
    check_header("GET 200 bytes", "GET 200 bytes");
    check_header("", "");
    check_header("2024-01-01", "2024-01-01");
}

#[test]
fn masking() {
    assert_eq!(mask_token("blk_-6952295868487656571", false), "<*>");
    assert_eq!(mask_token("10.251.73.220:50010", false), "<*>");
    assert_eq!(mask_token("(uid=0)", false), "(uid=<*>)");
    assert_eq!(mask_token("user=root", false), "user=root");
    assert_eq!(mask_token("user=root", true), "user=<*>");
    assert_eq!(mask_token("[173.234.31.186]", false), "[<*>]");
    assert_eq!(mask_token("Found", false), "Found");
}

/// `Fri Jun 17 07:07:00 2005`: the weekday before a month in a timestamp is masked with it,
/// so a date does not become a closed vocabulary of seven weekday names.
#[test]
fn weekday_before_a_timestamp_is_masked() {
    let mut miner = TemplateMiner::default();
    miner.add("connection from 24.54.76.216 at Fri Jun 17 07:07:00 2005");
    assert_eq!(miner.templates()[0].text(), "connection from <*> at <*>");
    // A weekday that is not followed by a date stays a word.
    miner.add("backup runs every Sunday night");
    assert_eq!(
        miner.templates()[1].text(),
        "backup runs every Sunday night"
    );
}

#[test]
fn same_shape_lines_share_a_template() {
    let mined = mine([
        "Received block blk_1 of size 67108864 from /10.0.0.1",
        "Received block blk_2 of size 12 from /10.0.0.2",
        "Deleting block blk_3 file /data/blk_3",
        "Received block blk_4 of size 5 from /10.0.0.9",
    ]);
    assert_eq!(
        mined.line_templates,
        vec![TemplateId(1), TemplateId(1), TemplateId(2), TemplateId(1)]
    );
    assert_eq!(
        mined.templates[0].text(),
        "Received block <*> of size <*> from <*>"
    );
    assert_eq!(mined.templates[0].count, 3);
}

#[test]
fn differing_words_are_generalised() {
    let mut miner = TemplateMiner::default();
    let a = miner.add("session opened for user alice by root");
    let b = miner.add("session opened for user bob by root");
    assert_eq!(a, b);
    assert_eq!(
        miner.templates()[0].text(),
        "session opened for user <*> by root"
    );
}

#[test]
fn many_leading_words_merge_into_a_wildcard() {
    let programs = [
        "chrome.exe",
        "firefox.exe",
        "Dropbox.exe",
        "WeChat.exe",
        "putty.exe",
        "git.exe",
    ];
    let lines: Vec<String> = programs
        .iter()
        .map(|p| format!("[10.30 16:49:06] {p} - proxy.example:5070 open through proxy HTTPS"))
        .collect();
    let mined = mine(lines.iter().map(String::as_str));
    assert_eq!(mined.templates.len(), 1);
    assert_eq!(
        mined.templates[0].text(),
        "<*> - proxy.example:<*> open through proxy HTTPS"
    );
    // Two one-off programs are not yet evidence of a variable: they may be two events.
    let mined = mine(lines.iter().take(2).map(String::as_str));
    assert_eq!(mined.templates.len(), 2);
}

/// Whether a leading word is a variable depends on its counts, not on a fixed number of
/// templates: six programs each on many lines are six recurring events, six programs each
/// on one line are a variable.
#[test]
fn leading_words_that_recur_stay_apart() {
    let services = ["cupsd", "sshd", "crond", "syslogd", "xinetd", "ntpd"];
    let mut lines = Vec::new();
    for round in 0..8 {
        for s in services {
            lines.push(format!(
                "Jun 14 15:16:{round:02} combo rc: {s} startup succeeded"
            ));
        }
    }
    let mined = mine(lines.iter().map(String::as_str));
    let texts: Vec<String> = mined.templates.iter().map(Template::text).collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert!(texts.contains(&"cupsd startup succeeded".to_owned()));
    let once: Vec<String> = services
        .iter()
        .map(|s| format!("Jun 14 15:16:01 combo rc: {s} startup succeeded"))
        .collect();
    let mined = mine(once.iter().map(String::as_str));
    let texts: Vec<String> = mined.templates.iter().map(Template::text).collect();
    assert_eq!(texts, ["<*> startup succeeded"]);
}

/// A position splits only when its words are few next to the template's lines and each
/// recurs: three states on 30 lines split, the same three on 4 lines do not (`log2 4 < 3`),
/// and six user names with some seen on 2 of 200 lines are a variable.
#[test]
fn split_depends_on_counts_and_lines() {
    let state_lines = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let state = ["Started", "Paused", "Stopped"][i % 3];
                format!(
                    "2024-01-01 10:00:{:02} INFO vm: lifecycle event for VM: {state}",
                    i % 60
                )
            })
            .collect()
    };
    let many = state_lines(30);
    assert_eq!(mine(many.iter().map(String::as_str)).templates.len(), 3);
    let few = state_lines(4);
    let texts: Vec<String> = mine(few.iter().map(String::as_str))
        .templates
        .iter()
        .map(Template::text)
        .collect();
    assert_eq!(texts, ["lifecycle event for VM: <*>"]);

    let mut users: Vec<&str> = vec!["root"; 190];
    users.extend([
        "ftp", "ftp", "git", "git", "mysql", "mysql", "uucp", "uucp", "news", "news",
    ]);
    let lines: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            format!(
                "Jun 14 15:16:{:02} combo sshd[{i}]: login failure; tty=ssh user={u}",
                i % 60
            )
        })
        .collect();
    let texts: Vec<String> = mine(lines.iter().map(String::as_str))
        .templates
        .iter()
        .map(Template::text)
        .collect();
    assert_eq!(texts, ["login failure; tty=ssh <*>"]);
}

#[test]
fn few_frequent_words_split_a_template() {
    let mut lines = Vec::new();
    for i in 0..30 {
        let state = ["Started", "Paused", "Stopped"][i % 3];
        lines.push(format!(
            "2024-01-01 10:00:{i:02} INFO vm.lifecycle: VM {state} (Lifecycle Event)"
        ));
    }
    let mined = mine(lines.iter().map(String::as_str));
    let texts: Vec<String> = mined.templates.iter().map(Template::text).collect();
    assert_eq!(
        texts,
        [
            "VM Started (Lifecycle Event)",
            "VM Paused (Lifecycle Event)",
            "VM Stopped (Lifecycle Event)"
        ]
    );
}

#[test]
fn words_that_fill_other_templates_are_variables() {
    let mut lines = Vec::new();
    for i in 0..30 {
        let user = ["cyrus", "news", "test"][i % 3];
        lines.push(format!("Jun 15 04:06:{i:02} combo su(pam_unix)[21416]: session opened for user {user} by (uid=0)"));
        lines.push(format!(
            "Jun 15 04:06:{i:02} combo su(pam_unix)[21416]: session closed for user {user}"
        ));
    }
    let mined = mine(lines.iter().map(String::as_str));
    let texts: Vec<String> = mined.templates.iter().map(Template::text).collect();
    assert_eq!(
        texts,
        [
            "session opened for user <*> by (uid=<*>)",
            "session closed for user <*>"
        ]
    );
}

/// The program name between a bracketed time and ` - ` is learned as header from the file:
/// the same events from many programs form one template each.
#[test]
fn header_learned_from_the_file_strips_program_and_separator() {
    let programs = ["chrome.exe", "firefox.exe", "svchost.exe", "outlook.exe"];
    let mut lines = Vec::new();
    for i in 0..40 {
        let p = programs[i % 4];
        lines.push(format!("[10.30 16:{:02}:{:02}] {p} - proxy.example.com:5070 open through proxy proxy.example.com:5070 HTTPS", i / 60, i % 60));
        lines.push(format!(
            "[10.30 16:{:02}:{:02}] {p} - close, {} bytes sent, {} bytes received, lifetime 00:0{}",
            i / 60,
            i % 60,
            100 + i,
            200 + i,
            i % 10
        ));
    }
    let model = HeaderModel::learn(lines.iter().map(|l| strip_header(l)));
    assert_eq!(
        model.len(),
        2,
        "program and separator are header: {model:?}"
    );
    let mined = mine(lines.iter().map(String::as_str));
    assert_eq!(mined.templates.len(), 2, "{:?}", mined.templates);
}

/// Message words keep no one shape across lines, so nothing is learned from ordinary messages.
#[test]
fn header_model_learns_nothing_from_messages() {
    let lines = [
        "Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:5",
        "PacketResponder 1 for block blk_2 terminating",
        "Verification succeeded for blk_3",
        "BLOCK* NameSystem.addStoredBlock: blockMap updated",
        "Deleting block blk_4 file /data/x",
        "Served block blk_5 to /10.0.0.3",
        "writeBlock blk_6 received exception java.io.IOException",
        "Starting thread to transfer block blk_7",
        "Received block blk_8 of size 6 from /10.0.0.4",
    ];
    assert!(HeaderModel::learn(lines).is_empty());
}

/// JSON lines are mined on their message field; the other fields are header.
#[test]
fn json_lines_are_mined_on_their_message() {
    assert_eq!(
        json_message(r#"{"ts":"2024-01-01T00:00:00Z","level":"INFO","msg":"user 42 logged in"}"#)
            .as_deref(),
        Some("user 42 logged in")
    );
    assert_eq!(json_message("user 42 logged in"), None);
    let mined = mine([
        r#"{"ts":"2024-01-01T00:00:00Z","level":"INFO","msg":"user 42 logged in"}"#,
        r#"{"ts":"2024-01-01T00:00:01Z","level":"WARN","msg":"user 7 logged in"}"#,
    ]);
    assert_eq!(mined.templates.len(), 1);
    assert_eq!(mined.templates[0].text(), "user <*> logged in");
}

/// A syslog priority opens RFC 3164 and RFC 5424 lines; `program[pid]:` may open a line alone.
#[test]
fn syslog_priority_and_leading_tag_are_header() {
    check_header(
        "<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick",
        "'su root' failed for lonvick",
    );
    check_header(
        "dfs.DataNode$PacketResponder[20235]: PacketResponder 1 for block blk_3 terminating",
        "PacketResponder 1 for block blk_3 terminating",
    );
    // An address opening a message is not a timestamp.
    check_header(
        "10.11.21.122,10.11.10.1 \"GET /openstack HTTP/1.1\" status: 200",
        "10.11.21.122,10.11.10.1 \"GET /openstack HTTP/1.1\" status: 200",
    );
}

/// A constant first word followed by a number is the message (`worker 5 started`), not a
/// `program pid` header: header names vary.
#[test]
fn constant_leading_word_is_not_header() {
    let lines: Vec<String> = (0..100)
        .map(|i| format!("worker {i} started in {i} ms"))
        .collect();
    assert!(HeaderModel::learn(lines.iter().map(String::as_str)).is_empty());
}

/// The per-line rules strip `ftpd:` after a logcat level but not `sshd(pam_unix):`; the lines
/// left with a shorter header learn their own model, so both groups lose the tag.
#[test]
fn headers_cut_short_on_some_lines_are_completed() {
    let mut lines = Vec::new();
    for i in 0..60 {
        let tag = ["ftpd:", "sshd(pam_unix):", "su(pam_unix):"][i % 3];
        lines.push(format!(
            "07-20 22:13:{:02}.077 {} {} I {tag} session opened for user u{i}",
            i % 60,
            20_000 + i,
            20_100 + i
        ));
    }
    let mined = mine(lines.iter().map(String::as_str));
    assert_eq!(mined.templates.len(), 1, "{:?}", mined.templates);
    assert_eq!(mined.templates[0].text(), "session opened for user <*>");
}

/// A syslog `host tag:` follows the timestamp itself; after a bracketed context group the
/// message has begun, so its `word word:` opening stays.
#[test]
fn host_and_tag_do_not_follow_a_context_group() {
    check_header(
        "[2024-07-20 22:13:21] [instance: b9000564] Total memory: 131072 MB",
        "Total memory: 131072 MB",
    );
    check_header(
        "Oct 11 22:14:15 mymachine su[230]: session opened",
        "session opened",
    );
}

/// An id-like field after the timestamp is header when (nearly) every line has one there, as a
/// host column does; when only some messages open with one (a client address), it stays in the
/// message, so those lines keep their words where the template tree routes on them.
#[test]
fn id_after_time_is_header_only_where_the_file_confirms_it() {
    for with_host in [false, true] {
        let mut lines = Vec::new();
        for i in 0..90 {
            let host = if with_host {
                format!("node-{} ", i % 5)
            } else {
                String::new()
            };
            let head = format!("[2024-03-01 10:{:02}:{:02}] {host}", i / 60, i % 60);
            let path = ["/health", "/ready", &format!("/v1/items/{i}")][i % 3].to_owned();
            lines.push(format!(
                "{head}10.0.{}.7 \"GET {path} HTTP/1.1\" status: 200 len: {} time: 0.{i}",
                i % 3,
                100 + i
            ));
            lines.push(format!("{head}worker pool resized to {} threads", i % 7));
            lines.push(format!("{head}cache flushed after {i} evictions"));
        }
        let mined = mine(lines.iter().map(String::as_str));
        let texts: Vec<String> = mined.templates.iter().map(Template::text).collect();
        assert_eq!(texts.len(), 3, "with_host={with_host}: {texts:?}");
        assert!(
            texts.contains(&"<*> \"GET <*> <*>\" status: <*> len: <*> time: <*>".to_owned()),
            "the address stays in the message (with_host={with_host}): {texts:?}"
        );
        assert!(
            texts.contains(&"worker pool resized to <*> threads".to_owned()),
            "the host column is header (with_host={with_host}): {texts:?}"
        );
    }
}

/// The `j`-th id-like field after the time is header when all but `1/sqrt(n)` of the `n` lines
/// with a header took it; lines without a header do not count; too few lines keep every guess.
#[test]
fn ids_after_time_held_needs_nearly_every_line() {
    let lines = |with: usize, second: usize, without: usize, none: usize| {
        let mut v = vec![Some(2); second];
        v.extend(vec![Some(1); with - second]);
        v.extend(vec![Some(0); without]);
        v.extend(vec![None; none]);
        v
    };
    // 100 lines with a header: 1 - 1/sqrt(100) = 90 % must take the field.
    assert_eq!(header::ids_after_time_held(lines(95, 0, 5, 0)), 1);
    assert_eq!(header::ids_after_time_held(lines(85, 0, 15, 0)), 0);
    assert_eq!(header::ids_after_time_held(lines(95, 40, 5, 0)), 1);
    assert_eq!(header::ids_after_time_held(lines(100, 92, 0, 0)), 2);
    // Headerless (continuation) lines are not counted against the column.
    assert_eq!(header::ids_after_time_held(lines(95, 0, 5, 400)), 1);
    // Seven lines teach nothing: the per-line rule stands.
    assert_eq!(header::ids_after_time_held(lines(3, 0, 4, 0)), usize::MAX);
}
