//! Loading and checking flow files: syntax, options per node kind, links between nodes,
//! reachability, loops without an exit, notices before consent and messages, prompt files,
//! the transfer allowlist and the calendar.

use core::ops::Range;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::diag::{did_you_mean, file_error, Diagnostic, Report};
use crate::flow::{
    Collect, ConsentNode, Flow, FlowSet, Kind, Menu, Node, NodeIdx, Notice, QueueNode, Validator,
    DANGLING,
};
use crate::hours::{Calendar, CLOSED, HOLIDAY};
use crate::raw::{friendly_message, DurationText, Prompts, RawFlow, RawNode, RawTable};

/// File extensions a prompt may have, in the order they are looked for.
pub const PROMPT_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];

/// Prompts the read-back of typed digits plays: "du har tastet" and one prompt per digit.
const READ_BACK_PROMPTS: [&str; 11] = [
    "you-entered",
    "digit-0",
    "digit-1",
    "digit-2",
    "digit-3",
    "digit-4",
    "digit-5",
    "digit-6",
    "digit-7",
    "digit-8",
    "digit-9",
];

/// Prompts a queue's position announcements use ("du er nummer" + "et i køen" …).
const POSITION_PROMPTS: [&str; 10] = [
    "queue-position",
    "position-1",
    "position-2",
    "position-3",
    "position-4",
    "position-5",
    "position-6",
    "position-7",
    "position-8",
    "position-9",
];

/// Every node kind, as written in `kind = "…"`.
const KINDS: [&str; 12] = [
    "play", "menu", "collect", "consent", "hours", "queue", "transfer", "message", "hangup",
    "goto", "set", "branch",
];

/// Where the loader looks for prompt files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromptDir {
    /// `prompts/` in the flow file's folder (the layout of `ivr-flows/`).
    #[default]
    BesideFlow,
    /// This folder.
    At(PathBuf),
    /// Do not check that prompt files exist.
    Skip,
}

/// Options for loading and checking flow files.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Where prompt files are; a prompt named `x` must exist as `x.wav`, `.flac`, `.mp3` or `.ogg`.
    pub prompt_dir: PromptDir,
}

impl LoadOptions {
    /// Options that look for prompts in `dir`.
    pub fn with_prompt_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            prompt_dir: PromptDir::At(dir.into()),
        }
    }
}

/// Parses and checks flow text; `name` is the entry point and the file name in diagnostics.
/// Prompt files are not checked.
pub fn load_str(name: &str, text: &str) -> Result<Flow, Vec<Diagnostic>> {
    build(name, name, None, text, None)
}

/// Like [`load_str`], checking prompt files in `prompt_dir`.
pub fn load_str_with(name: &str, text: &str, prompt_dir: &Path) -> Result<Flow, Vec<Diagnostic>> {
    build(name, name, None, text, Some(prompt_dir))
}

/// Loads and checks one flow file, with prompts in `prompts/` beside it. The entry point name
/// is the file stem. On success, [`Flow::warnings`] holds any warnings.
pub fn load_file(path: &Path) -> Result<Flow, Vec<Diagnostic>> {
    load_file_with(path, &LoadOptions::default())
}

/// Like [`load_file`], with options.
pub fn load_file_with(path: &Path, options: &LoadOptions) -> Result<Flow, Vec<Diagnostic>> {
    let label = path.display().to_string();
    let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
        return Err(vec![file_error(
            &label,
            "the file name is not a usable entry point name",
        )]);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![file_error(&label, format!("cannot read the file: {e}"))])?;
    let prompt_dir = match &options.prompt_dir {
        PromptDir::BesideFlow => Some(
            path.parent()
                .unwrap_or_else(|| Path::new("."))
                .join("prompts"),
        ),
        PromptDir::At(dir) => Some(dir.clone()),
        PromptDir::Skip => None,
    };
    build(name, &label, Some(path), &text, prompt_dir.as_deref())
}

/// Loads every `*.toml` file in `dir`. Files with errors are left out; the diagnostics hold
/// their errors and the warnings of the files that loaded.
pub fn load_dir(dir: &Path) -> (FlowSet, Vec<Diagnostic>) {
    load_dir_with(dir, &LoadOptions::default())
}

/// Like [`load_dir`], with options.
pub fn load_dir_with(dir: &Path, options: &LoadOptions) -> (FlowSet, Vec<Diagnostic>) {
    let mut set = FlowSet::new();
    let mut diags = Vec::new();
    let files = match flow_files(dir) {
        Ok(f) => f,
        Err(d) => return (set, vec![d]),
    };
    for path in files {
        match load_file_with(&path, options) {
            Ok(flow) => {
                diags.extend(flow.warnings.iter().cloned());
                set.insert(Arc::new(flow));
            }
            Err(d) => diags.extend(d),
        }
    }
    (set, diags)
}

impl FlowSet {
    /// Reloads `dir` for a running server: changed files that pass the check replace their
    /// flow, a file that fails keeps its previous version (calls already running keep the
    /// `Arc` they started with either way), and a file that disappeared is dropped.
    pub fn reload(&self, dir: &Path, options: &LoadOptions) -> (Self, Vec<Diagnostic>) {
        let mut set = Self::new();
        let mut diags = Vec::new();
        let files = match flow_files(dir) {
            Ok(f) => f,
            Err(d) => return (self.clone(), vec![d]),
        };
        for path in files {
            match load_file_with(&path, options) {
                Ok(flow) => {
                    diags.extend(flow.warnings.iter().cloned());
                    set.insert(Arc::new(flow));
                }
                Err(d) => {
                    diags.extend(d);
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    if let Some(old) = self.get(stem) {
                        set.insert(Arc::clone(old));
                    }
                }
            }
        }
        (set, diags)
    }
}

/// Checks files as `kald flow check` does: every error and warning of every file, each file
/// with prompts in `prompts/` beside it.
pub fn check(paths: &[PathBuf]) -> Vec<Diagnostic> {
    check_with(paths, &LoadOptions::default())
}

/// Like [`check`], with options.
pub fn check_with(paths: &[PathBuf], options: &LoadOptions) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for path in paths {
        match load_file_with(path, options) {
            Ok(flow) => out.extend(flow.warnings),
            Err(d) => out.extend(d),
        }
    }
    out
}

/// The `*.toml` files of a folder, sorted.
fn flow_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let label = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| file_error(&label, format!("cannot read the flow folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The checker: text in, a flow or every problem out.
fn build(
    name: &str,
    label: &str,
    path: Option<&Path>,
    text: &str,
    prompt_dir: Option<&Path>,
) -> Result<Flow, Vec<Diagnostic>> {
    let mut report = Report::new(label, text);
    let raw: RawFlow = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            report.error(e.span().unwrap_or(0..0), friendly_message(e.message()));
            return Err(report.finish());
        }
    };

    let calendar_span = raw.calendar.as_ref().map(Spanned::span);
    let calendar = raw.calendar.map(|c| c.into_inner().build(&mut report));
    let description = raw.description.map(Spanned::into_inner);

    // Nodes in file order; ids are the TOML keys, so they are unique.
    let mut raw_nodes: Vec<(Spanned<String>, Spanned<RawNode>)> = raw.nodes.into_iter().collect();
    raw_nodes.sort_by_key(|(k, _)| k.span().start);
    let index: BTreeMap<String, usize> = raw_nodes
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.get_ref().clone(), i))
        .collect();
    if raw_nodes.is_empty() {
        report.error(0..0, "the file has no nodes");
    }

    let mut ctx = Ctx {
        report: &mut report,
        index: &index,
        prompts: Vec::new(),
        sets_fields: BTreeSet::new(),
        branch_fields: Vec::new(),
        hours_nodes: Vec::new(),
        transfers: Vec::new(),
    };
    let mut nodes: Vec<Pending> = Vec::new();
    for (id, raw_node) in raw_nodes {
        let span = id.span();
        let id = id.into_inner();
        let raw_node = raw_node.into_inner();
        let description = raw_node.description.as_ref().map(|d| d.get_ref().clone());
        let kind = ctx.node(&id, span.clone(), raw_node);
        nodes.push(Pending {
            id,
            span,
            description,
            kind,
        });
    }
    let Ctx {
        prompts,
        sets_fields,
        branch_fields,
        hours_nodes,
        transfers,
        ..
    } = ctx;

    let start = match index.get(raw.start.get_ref()) {
        Some(&i) => NodeIdx(i),
        None => {
            if !index.is_empty() {
                report.error(
                    raw.start.span(),
                    format!(
                        "the flow starts at '{}', which does not exist{}",
                        raw.start.get_ref(),
                        did_you_mean(raw.start.get_ref(), index.keys().map(String::as_str))
                    ),
                );
            }
            DANGLING
        }
    };

    let kinds: Vec<Option<&Kind>> = nodes.iter().map(|n| n.kind.as_ref()).collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let spans: Vec<Range<usize>> = nodes.iter().map(|n| n.span.clone()).collect();
    if start != DANGLING {
        check_graph(&mut report, start, &kinds, &ids, &spans);
    }

    // Opening hours need a calendar whose modes they cover.
    match (&calendar, &calendar_span) {
        (Some(Some(cal)), _) => {
            for h in &hours_nodes {
                check_hours_node(&mut report, cal, &h.id, h.span.clone(), &h.when);
            }
        }
        (Some(None), _) => {} // The calendar's own errors are reported.
        (None, _) => {
            for HoursRef { id, span, .. } in &hours_nodes {
                report.error(
                    span.clone(),
                    format!(
                        "node '{id}' checks the opening hours, but the file has no [calendar] \
                         section"
                    ),
                );
            }
        }
    }

    // Transfers only to allowed targets.
    let allowlist: Vec<String> = raw
        .transfer_allowlist
        .unwrap_or_default()
        .into_iter()
        .map(Spanned::into_inner)
        .collect();
    for (id, target) in &transfers {
        if !allowlist.iter().any(|a| a == target.get_ref()) {
            report.error(
                target.span(),
                format!(
                    "node '{id}' transfers to '{}', which is not on the transfer_allowlist at \
                     the top of the file",
                    target.get_ref()
                ),
            );
        }
    }

    // A branch on a field nobody sets always takes `otherwise`.
    for (id, field) in &branch_fields {
        if !sets_fields.contains(field.get_ref()) {
            report.warning(
                field.span(),
                format!(
                    "node '{id}' branches on the field '{}', which no node sets, so it always \
                     takes 'otherwise'",
                    field.get_ref()
                ),
            );
        }
    }

    let names = check_prompts(&mut report, &prompts, prompt_dir);

    if report.has_errors() {
        return Err(report.finish());
    }
    let mut built = Vec::with_capacity(nodes.len());
    for Pending {
        id,
        description,
        kind,
        ..
    } in nodes
    {
        // Invariant: with no errors reported every node's kind was built.
        let Some(kind) = kind else {
            return Err(report.finish());
        };
        built.push(Node {
            id,
            description,
            kind,
        });
    }
    let calendar: Option<Calendar> = calendar.flatten();
    Ok(Flow {
        name: name.to_owned(),
        path: path.map(Path::to_path_buf),
        description,
        start,
        nodes: built,
        calendar,
        allowlist,
        prompts: names,
        warnings: report.finish(),
    })
}

/// A node while the file is checked; `kind` is `None` if it could not be built at all.
struct Pending {
    id: String,
    /// Where the id is written (`[nodes.<id>]`).
    span: Range<usize>,
    description: Option<String>,
    kind: Option<Kind>,
}

/// An `hours` node's branches, checked against the calendar once it is built.
struct HoursRef {
    id: String,
    span: Range<usize>,
    when: Vec<(Spanned<String>, NodeIdx)>,
}

/// State while building nodes.
struct Ctx<'r, 'a> {
    report: &'r mut Report<'a>,
    index: &'r BTreeMap<String, usize>,
    /// Every prompt reference with where it is written.
    prompts: Vec<(String, Range<usize>)>,
    /// Fields some node sets (`set`, `collect` with `field`, `queue` sets `topic`).
    sets_fields: BTreeSet<String>,
    branch_fields: Vec<(String, Spanned<String>)>,
    hours_nodes: Vec<HoursRef>,
    transfers: Vec<(String, Spanned<String>)>,
}

/// Which options each kind takes (besides `kind` and `description`).
fn allowed_options(kind: &str) -> &'static [&'static str] {
    match kind {
        "play" => &["prompt", "barge_in", "notice", "next"],
        "menu" => &[
            "prompt",
            "barge_in",
            "choices",
            "timeout",
            "invalid_prompt",
            "no_input_prompt",
            "retries",
            "fallback",
        ],
        "collect" => &[
            "prompt",
            "barge_in",
            "digits",
            "min_digits",
            "max_digits",
            "timeout",
            "inter_digit_timeout",
            "overall_timeout",
            "retries",
            "validator",
            "invalid_prompt",
            "no_input_prompt",
            "read_back",
            "field",
            "next",
            "fallback",
        ],
        "consent" => &[
            "prompt",
            "barge_in",
            "yes",
            "no",
            "timeout",
            "retries",
            "invalid_prompt",
            "yes_prompt",
            "no_prompt",
            "next",
        ],
        "hours" => &["when"],
        "queue" => &[
            "queue",
            "topic",
            "prompt",
            "hold_music",
            "announce_position",
            "priority",
            "max_wait",
            "fallback",
        ],
        "transfer" => &["target", "prompt"],
        "message" => &["team", "prompt", "max_length", "next"],
        "hangup" => &["prompt"],
        "goto" => &["to"],
        "set" => &["field", "value", "next"],
        "branch" => &["field", "cases", "otherwise"],
        _ => &[],
    }
}

/// What a required option is for, to say in "needs …" messages.
fn purpose(option: &str) -> &'static str {
    match option {
        "prompt" => "the prompt to play",
        "next" => "the node to go to next",
        "fallback" => "where callers go when they run out of tries",
        "choices" => "which key leads where, like { 1 = \"dagpenge\" }",
        "when" => "where calls go when open, closed and on holidays",
        "queue" => "the name of the queue",
        "target" => "the number or SIP address to transfer to",
        "team" => "the team that gets the message",
        "to" => "the node to jump to",
        "field" => "the name of the call field",
        "value" => "the value to give the field",
        "cases" => "which value leads where",
        "otherwise" => "where calls go when no case matches",
        _ => "a value",
    }
}

impl Ctx<'_, '_> {
    fn node(&mut self, id: &str, span: Range<usize>, raw: RawNode) -> Option<Kind> {
        let kind = raw.kind.get_ref().as_str();
        if !KINDS.contains(&kind) {
            self.report.error(
                raw.kind.span(),
                format!(
                    "node '{id}' has the unknown kind '{kind}'{}; the kinds are: {}",
                    did_you_mean(kind, KINDS),
                    KINDS.join(", ")
                ),
            );
            return None;
        }
        let allowed = allowed_options(kind);
        for (option, option_span) in raw.present() {
            if option != "description" && !allowed.contains(&option) {
                self.report.error(
                    option_span,
                    format!(
                        "node '{id}' is a '{kind}' node, which has no option '{option}' (it \
                         takes: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        let mut n = NodeCtx {
            ctx: self,
            id,
            kind,
            span,
        };
        // Built even with errors (broken links are DANGLING), so the graph checks still see
        // this node's links and do not report its targets as unreachable; the errors already
        // reported keep the file from loading.
        n.build(&raw)
    }
}

/// Building one node.
struct NodeCtx<'c, 'r, 'a> {
    ctx: &'c mut Ctx<'r, 'a>,
    id: &'c str,
    kind: &'c str,
    span: Range<usize>,
}

impl NodeCtx<'_, '_, '_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        self.ctx.report.error(span, message);
    }

    fn required<'v, T>(
        &mut self,
        option: &str,
        value: &'v Option<Spanned<T>>,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            let message = format!(
                "node '{}' ({}) needs '{option}': {}",
                self.id,
                self.kind,
                purpose(option)
            );
            self.error(self.span.clone(), message);
        }
        value.as_ref()
    }

    /// Resolves a node id; `phrase` completes "node 'x' … 'y', which does not exist".
    fn target(&mut self, name: &Spanned<String>, phrase: &str) -> NodeIdx {
        match self.ctx.index.get(name.get_ref()) {
            Some(&i) => NodeIdx(i),
            None => {
                let message = format!(
                    "node '{}' {phrase} '{}', which does not exist{}",
                    self.id,
                    name.get_ref(),
                    did_you_mean(name.get_ref(), self.ctx.index.keys().map(String::as_str))
                );
                self.error(name.span(), message);
                DANGLING
            }
        }
    }

    fn required_target(
        &mut self,
        option: &str,
        value: &Option<Spanned<String>>,
        phrase: &str,
    ) -> NodeIdx {
        match self.required(option, value) {
            Some(v) => self.target(v, phrase),
            None => DANGLING,
        }
    }

    fn prompts(&mut self, value: &Option<Spanned<Prompts>>) -> Vec<String> {
        let Some(value) = value else {
            return Vec::new();
        };
        for name in &value.get_ref().0 {
            self.ctx.prompts.push((name.clone(), value.span()));
        }
        value.get_ref().0.clone()
    }

    fn required_prompts(&mut self, value: &Option<Spanned<Prompts>>) -> Vec<String> {
        if let Some(v) = self.required("prompt", value) {
            if v.get_ref().0.is_empty() {
                let message = format!("node '{}' needs at least one prompt", self.id);
                self.error(v.span(), message);
            }
        }
        self.prompts(value)
    }

    fn prompt_ref(&mut self, name: &str, span: Range<usize>) {
        self.ctx.prompts.push((name.to_owned(), span));
    }

    fn duration(
        &mut self,
        option: &str,
        value: &Option<Spanned<DurationText>>,
        default: Duration,
    ) -> Duration {
        self.optional_duration(option, value).unwrap_or(default)
    }

    fn optional_duration(
        &mut self,
        option: &str,
        value: &Option<Spanned<DurationText>>,
    ) -> Option<Duration> {
        let value = value.as_ref()?;
        match value.get_ref().to_duration() {
            Ok(d) => Some(d),
            Err(why) => {
                let message = format!("node '{}': {option} {why}", self.id);
                self.error(value.span(), message);
                None
            }
        }
    }

    fn number(
        &mut self,
        option: &str,
        value: &Option<Spanned<i64>>,
        range: core::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        let Some(value) = value else {
            return default;
        };
        let n = *value.get_ref();
        if range.contains(&n) {
            n
        } else {
            let message = format!(
                "node '{}': {option} is {n}, but must be from {} to {}",
                self.id,
                range.start(),
                range.end()
            );
            self.error(value.span(), message);
            default
        }
    }

    fn retries(&mut self, value: &Option<Spanned<i64>>, default: i64) -> u32 {
        u32::try_from(self.number("retries", value, 0..=9, default)).unwrap_or(0)
    }

    /// A key on the phone: one of 0-9, * and #.
    fn key(&mut self, option: &str, value: &Option<Spanned<String>>, default: char) -> char {
        let Some(value) = value else {
            return default;
        };
        match key_char(value.get_ref()) {
            Some(c) => c,
            None => {
                let message = format!(
                    "node '{}': {option} is '{}', but must be one key: 0-9, * or #",
                    self.id,
                    value.get_ref()
                );
                self.error(value.span(), message);
                default
            }
        }
    }

    fn name(&mut self, option: &str, value: &Spanned<String>) -> String {
        let v = value.get_ref();
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            let message = format!(
                "node '{}': {option} '{v}' may only use letters a-z, digits, '-' and '_'",
                self.id
            );
            self.error(value.span(), message);
        }
        v.clone()
    }

    fn table(
        &mut self,
        value: &Spanned<RawTable>,
        phrase: impl Fn(&str) -> String,
    ) -> Vec<(Spanned<String>, NodeIdx)> {
        let mut out: Vec<(Spanned<String>, NodeIdx)> = value
            .get_ref()
            .iter()
            // Keys have no span of their own: use the value's.
            .map(|(k, v)| (Spanned::new(v.span(), k.clone()), v.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(k, v)| {
                let to = self.target(&v, &phrase(k.get_ref()));
                (k, to)
            })
            .collect();
        out.sort_by_key(|(k, _)| k.span().start);
        out
    }

    fn build(&mut self, raw: &RawNode) -> Option<Kind> {
        let id = self.id.to_owned();
        Some(match self.kind {
            "play" => {
                let prompts = self.required_prompts(&raw.prompt);
                let notice = match &raw.notice {
                    None => None,
                    Some(n) => match n.get_ref().as_str() {
                        "recording" => Some(Notice::Recording),
                        "message" => Some(Notice::Message),
                        other => {
                            let message = format!(
                                "node '{id}': notice is '{other}', but must be \"recording\" \
                                 (before consent) or \"message\" (before message)"
                            );
                            self.error(n.span(), message);
                            None
                        }
                    },
                };
                let barge_in = raw.barge_in.as_ref().is_some_and(|b| *b.get_ref());
                if notice.is_some() && barge_in {
                    let span = raw
                        .barge_in
                        .as_ref()
                        .map_or(self.span.clone(), Spanned::span);
                    self.ctx.report.warning(
                        span,
                        format!(
                            "node '{id}' is a notice, but callers can skip it with a key \
                             (barge_in = true); a caller who skips it has not been informed"
                        ),
                    );
                }
                let next = self.required_target("next", &raw.next, "continues to");
                Kind::Play {
                    prompts,
                    barge_in,
                    notice,
                    next,
                }
            }
            "menu" => {
                let prompts = self.required_prompts(&raw.prompt);
                let mut choices = Vec::new();
                if let Some(table) = self.required("choices", &raw.choices) {
                    let phrase = |k: &str| {
                        if k.len() == 1 && k.chars().all(|c| c.is_ascii_digit()) {
                            format!("sends digit {k} to")
                        } else {
                            format!("sends key {k} to")
                        }
                    };
                    for (key, to) in self.table(table, phrase) {
                        match key_char(key.get_ref()) {
                            Some(c) => choices.push((c, to)),
                            None => {
                                let message = format!(
                                    "node '{id}': '{}' is not a key; menu choices are single \
                                     keys 0-9, * or #",
                                    key.get_ref()
                                );
                                self.error(key.span(), message);
                            }
                        }
                    }
                    if table.get_ref().is_empty() {
                        let message = format!("node '{id}' has no choices");
                        self.error(table.span(), message);
                    }
                }
                let menu = Menu {
                    prompts,
                    barge_in: raw.barge_in.as_ref().is_none_or(|b| *b.get_ref()),
                    choices,
                    timeout: self.duration("timeout", &raw.timeout, Duration::from_secs(6)),
                    invalid_prompts: self.prompts(&raw.invalid_prompt),
                    no_input_prompts: self.prompts(&raw.no_input_prompt),
                    retries: self.retries(&raw.retries, 2),
                    fallback: self.required_target("fallback", &raw.fallback, "falls back to"),
                };
                Kind::Menu(menu)
            }
            "collect" => self.collect(raw)?,
            "consent" => {
                let prompts = self.required_prompts(&raw.prompt);
                let yes = self.key("yes", &raw.yes, '1');
                let no = self.key("no", &raw.no, '2');
                if yes == no {
                    let span = raw.no.as_ref().map_or(self.span.clone(), Spanned::span);
                    let message = format!("node '{id}' uses the key {yes} for both yes and no");
                    self.error(span, message);
                }
                let consent = ConsentNode {
                    prompts,
                    barge_in: raw.barge_in.as_ref().is_none_or(|b| *b.get_ref()),
                    yes,
                    no,
                    timeout: self.duration("timeout", &raw.timeout, Duration::from_secs(8)),
                    retries: self.retries(&raw.retries, 0),
                    invalid_prompts: self.prompts(&raw.invalid_prompt),
                    yes_prompts: self.prompts(&raw.yes_prompt),
                    no_prompts: self.prompts(&raw.no_prompt),
                    next: self.required_target("next", &raw.next, "continues to"),
                };
                Kind::Consent(consent)
            }
            "hours" => {
                let when = match self.required("when", &raw.when) {
                    Some(t) => self.table(t, |k| format!("sends '{k}' calls to")),
                    None => Vec::new(),
                };
                let span = self.span.clone();
                self.ctx.hours_nodes.push(HoursRef {
                    id,
                    span,
                    when: when.clone(),
                });
                Kind::Hours {
                    when: when.into_iter().map(|(k, v)| (k.into_inner(), v)).collect(),
                }
            }
            "queue" => {
                let queue = match self.required("queue", &raw.queue) {
                    Some(q) => self.name("queue", q),
                    None => String::new(),
                };
                let topic = raw.topic.as_ref().map(|t| self.name("topic", t));
                self.ctx.sets_fields.insert("topic".to_owned());
                let prompts = self.prompts(&raw.prompt);
                let hold_music = raw.hold_music.as_ref().map(|h| {
                    self.prompt_ref(h.get_ref(), h.span());
                    h.get_ref().clone()
                });
                let announce_every =
                    self.optional_duration("announce_position", &raw.announce_position);
                if let Some(a) = &raw.announce_position {
                    for p in POSITION_PROMPTS {
                        self.prompt_ref(p, a.span());
                    }
                }
                let max_wait = self.optional_duration("max_wait", &raw.max_wait);
                let fallback = raw
                    .fallback
                    .as_ref()
                    .map(|f| self.target(f, "sends callers who waited too long to"));
                match (&raw.max_wait, &raw.fallback) {
                    (Some(m), None) => {
                        let message = format!(
                            "node '{id}' has max_wait but no fallback: where callers go after \
                             waiting that long"
                        );
                        self.error(m.span(), message);
                    }
                    (None, Some(f)) => {
                        let message = format!(
                            "node '{id}' has a fallback but no max_wait, so the fallback is \
                             never used"
                        );
                        self.error(f.span(), message);
                    }
                    _ => {}
                }
                let priority = self.number("priority", &raw.priority, 0..=9, 0);
                Kind::Queue(QueueNode {
                    queue,
                    topic,
                    prompts,
                    hold_music,
                    announce_every,
                    priority: u8::try_from(priority).unwrap_or(0),
                    max_wait,
                    fallback,
                })
            }
            "transfer" => {
                let target = self.required("target", &raw.target).cloned();
                let prompts = self.prompts(&raw.prompt);
                let target = target.map(|t| {
                    self.ctx.transfers.push((id.clone(), t.clone()));
                    t.into_inner()
                })?;
                Kind::Transfer { target, prompts }
            }
            "message" => {
                let team = match self.required("team", &raw.team) {
                    Some(t) => self.name("team", t),
                    None => String::new(),
                };
                Kind::Message {
                    team,
                    prompts: self.prompts(&raw.prompt),
                    max_len: self.duration("max_length", &raw.max_length, Duration::from_secs(120)),
                    next: self.required_target("next", &raw.next, "continues to"),
                }
            }
            "hangup" => Kind::Hangup {
                prompts: self.prompts(&raw.prompt),
            },
            "goto" => Kind::Goto {
                to: self.required_target("to", &raw.to, "jumps to"),
            },
            "set" => {
                let field = match self.required("field", &raw.field) {
                    Some(f) => self.name("field", f),
                    None => String::new(),
                };
                self.ctx.sets_fields.insert(field.clone());
                let value = self
                    .required("value", &raw.value)
                    .map(|v| v.get_ref().clone());
                Kind::Set {
                    field,
                    value: value.unwrap_or_default(),
                    next: self.required_target("next", &raw.next, "continues to"),
                }
            }
            "branch" => {
                let field = self.required("field", &raw.field).cloned();
                let name = field
                    .as_ref()
                    .map(|f| self.name("field", f))
                    .unwrap_or_default();
                if let Some(f) = field {
                    self.ctx.branch_fields.push((id.clone(), f));
                }
                let cases = match self.required("cases", &raw.cases) {
                    Some(t) => self.table(t, |k| format!("sends {name} '{k}' to")),
                    None => Vec::new(),
                };
                Kind::Branch {
                    field: name.clone(),
                    cases: cases
                        .into_iter()
                        .map(|(k, v)| (k.into_inner(), v))
                        .collect(),
                    otherwise: self.required_target(
                        "otherwise",
                        &raw.otherwise,
                        "sends other calls to",
                    ),
                }
            }
            _ => return None,
        })
    }

    fn collect(&mut self, raw: &RawNode) -> Option<Kind> {
        let id = self.id.to_owned();
        let prompts = self.required_prompts(&raw.prompt);
        let validator = match &raw.validator {
            None => None,
            Some(v) if v.get_ref() == "cpr" => Some(Validator::Cpr),
            Some(v) => {
                let message = format!(
                    "node '{id}' uses the unknown validator '{}'; the validators are: cpr",
                    v.get_ref()
                );
                self.error(v.span(), message);
                None
            }
        };
        let (default_min, default_max) = match validator {
            Some(Validator::Cpr) => (10, 10),
            None => (1, 20),
        };
        let (min, max);
        if let Some(d) = &raw.digits {
            if let Some(other) = raw.min_digits.as_ref().or(raw.max_digits.as_ref()) {
                let message = format!(
                    "node '{id}' has both digits and min_digits/max_digits; use one or the other"
                );
                self.error(other.span(), message);
            }
            let n = self.number("digits", &Some(d.clone()), 1..=30, default_max);
            (min, max) = (n, n);
        } else {
            min = self.number("min_digits", &raw.min_digits, 1..=30, default_min);
            max = self.number("max_digits", &raw.max_digits, 1..=30, default_max.max(min));
            if min > max {
                let span = raw
                    .min_digits
                    .as_ref()
                    .map_or(self.span.clone(), Spanned::span);
                let message =
                    format!("node '{id}': min_digits ({min}) is more than max_digits ({max})");
                self.error(span, message);
            }
        }
        if validator == Some(Validator::Cpr) && (min, max) != (10, 10) {
            let span = raw
                .digits
                .as_ref()
                .or(raw.min_digits.as_ref())
                .or(raw.max_digits.as_ref())
                .map_or(self.span.clone(), Spanned::span);
            let message = format!("node '{id}': a CPR number has exactly 10 digits");
            self.error(span, message);
        }
        let field = raw.field.as_ref().map(|f| self.name("field", f));
        if let (Some(Validator::Cpr), Some(f)) = (validator, &raw.field) {
            let message = format!(
                "node '{id}': a CPR number is kept in the call's protected CPR slot, never in a \
                 field; remove 'field'"
            );
            self.error(f.span(), message);
        }
        if let Some(f) = &field {
            self.ctx.sets_fields.insert(f.clone());
        }
        let read_back = raw.read_back.as_ref().is_some_and(|r| *r.get_ref());
        if let Some(r) = raw.read_back.as_ref().filter(|r| *r.get_ref()) {
            for p in READ_BACK_PROMPTS {
                self.prompt_ref(p, r.span());
            }
        }
        let collect = Collect {
            prompts,
            barge_in: raw.barge_in.as_ref().is_none_or(|b| *b.get_ref()),
            min_digits: usize::try_from(min).unwrap_or(1),
            max_digits: usize::try_from(max).unwrap_or(1),
            timeout: self.duration("timeout", &raw.timeout, Duration::from_secs(10)),
            inter_digit_timeout: self.duration(
                "inter_digit_timeout",
                &raw.inter_digit_timeout,
                Duration::from_secs(5),
            ),
            overall_timeout: self.optional_duration("overall_timeout", &raw.overall_timeout),
            retries: self.retries(&raw.retries, 2),
            validator,
            invalid_prompts: self.prompts(&raw.invalid_prompt),
            no_input_prompts: self.prompts(&raw.no_input_prompt),
            read_back,
            field,
            next: self.required_target("next", &raw.next, "continues to"),
            fallback: self.required_target("fallback", &raw.fallback, "falls back to"),
        };
        Some(Kind::Collect(collect))
    }
}

/// One key on the phone pad.
fn key_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    (chars.next().is_none() && (c.is_ascii_digit() || c == '*' || c == '#')).then_some(c)
}

/// Reachability, loops without an exit, and notices before consent and message nodes.
fn check_graph(
    report: &mut Report<'_>,
    start: NodeIdx,
    kinds: &[Option<&Kind>],
    ids: &[&str],
    spans: &[Range<usize>],
) {
    let n = kinds.len();
    let edges: Vec<Vec<usize>> = kinds
        .iter()
        .map(|k| {
            k.map(|k| {
                k.edges()
                    .into_iter()
                    .map(|e| e.to.0)
                    .filter(|&t| t < n)
                    .collect()
            })
            .unwrap_or_default()
        })
        .collect();

    // Reachable from the start.
    let mut reached = vec![false; n];
    let mut todo = VecDeque::from([start.0]);
    reached[start.0] = true;
    while let Some(i) = todo.pop_front() {
        for &t in &edges[i] {
            if !reached[t] {
                reached[t] = true;
                todo.push_back(t);
            }
        }
    }
    for i in (0..n).filter(|&i| !reached[i]) {
        report.warning(
            spans[i].clone(),
            format!(
                "node '{}' is never reached: no node leads to it and the flow does not start \
                 there",
                ids[i]
            ),
        );
    }

    // Which nodes can lead to an exit. Broken nodes and links count as exits, so one mistake
    // is not reported twice.
    let mut exits = vec![false; n];
    for i in 0..n {
        let dangling = kinds[i].is_some_and(|k| k.edges().iter().any(|e| e.to.0 >= n));
        exits[i] = kinds[i].is_none_or(Kind::is_exit) || dangling;
    }
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            if !exits[i] && edges[i].iter().any(|&t| exits[t]) {
                exits[i] = true;
                changed = true;
            }
        }
    }
    let stuck: Vec<usize> = (0..n).filter(|&i| reached[i] && !exits[i]).collect();
    if let Some(&first) = stuck.first() {
        let message = if stuck.len() == 1 {
            format!(
                "node '{}' never leads to a queue, transfer or hangup: callers would be stuck \
                 in it",
                ids[first]
            )
        } else {
            let names: Vec<String> = stuck.iter().map(|&i| format!("'{}'", ids[i])).collect();
            format!(
                "nodes {} only lead to each other, never to a queue, transfer or hangup: \
                 callers would go round in circles",
                join_and(&names)
            )
        };
        report.error(spans[first].clone(), message);
    }

    for (notice, target, what, notice_what) in [
        (
            Notice::Recording,
            "consent",
            "the consent question",
            "a 'play' node with notice = \"recording\" (who records, why, for how long, and \
             how to withdraw consent)",
        ),
        (
            Notice::Message,
            "message",
            "the message recording",
            "a 'play' node with notice = \"message\" (that the message is recorded and how \
             long it is kept)",
        ),
    ] {
        let is_notice =
            |i: usize| matches!(kinds[i], Some(Kind::Play { notice: Some(x), .. }) if *x == notice);
        // Walk from the start without passing a notice; any target reached is unguarded.
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut todo = VecDeque::from([start.0]);
        seen[start.0] = true;
        while let Some(i) = todo.pop_front() {
            if is_notice(i) {
                continue;
            }
            if kinds[i].is_some_and(|k| k.name() == target) {
                let mut path = vec![ids[i]];
                let mut at = i;
                while let Some(p) = parent[at] {
                    path.push(ids[p]);
                    at = p;
                }
                path.reverse();
                report.error(
                    spans[i].clone(),
                    format!(
                        "{target} node '{}' can be reached without a notice before {what}: \
                         calls can go {}; put {notice_what} on the way",
                        ids[i],
                        path.join(" → ")
                    ),
                );
                continue;
            }
            for &t in &edges[i] {
                if !seen[t] {
                    seen[t] = true;
                    parent[t] = Some(i);
                    todo.push_back(t);
                }
            }
        }
    }
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// An `hours` node must cover every mode of the calendar and `closed`, and nothing else.
fn check_hours_node(
    report: &mut Report<'_>,
    calendar: &Calendar,
    id: &str,
    span: Range<usize>,
    when: &[(Spanned<String>, NodeIdx)],
) {
    let known: Vec<&str> = calendar
        .modes
        .iter()
        .map(String::as_str)
        .chain([CLOSED, HOLIDAY])
        .collect();
    for (key, _) in when {
        if !known.contains(&key.get_ref().as_str()) {
            report.error(
                key.span(),
                format!(
                    "node '{id}' says where '{}' calls go, but the calendar has no such mode{}; \
                     it can use: {}",
                    key.get_ref(),
                    did_you_mean(key.get_ref(), known.iter().copied()),
                    known.join(", ")
                ),
            );
        }
    }
    let has = |m: &str| when.iter().any(|(k, _)| k.get_ref() == m);
    for mode in calendar.modes.iter().map(String::as_str).chain([CLOSED]) {
        if !has(mode) {
            report.error(
                span.clone(),
                format!("node '{id}' does not say where calls go when the line is '{mode}'"),
            );
        }
    }
}

/// Checks prompt names and, given a folder, that each has a sound file; returns the names.
fn check_prompts(
    report: &mut Report<'_>,
    prompts: &[(String, Range<usize>)],
    dir: Option<&Path>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, span) in prompts {
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            report.error(
                span.clone(),
                format!("'{name}' is not a prompt name: use only letters a-z, digits, '-' and '_'"),
            );
            continue;
        }
        names.insert(name.clone());
    }
    let Some(dir) = dir else {
        return names;
    };
    let available: BTreeSet<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| PROMPT_EXTENSIONS.contains(&e))
            })
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect(),
        Err(e) => {
            report.error(
                0..0,
                format!("cannot read the prompt folder {}: {e}", dir.display()),
            );
            return names;
        }
    };
    for (name, span) in prompts {
        if names.contains(name) && !available.contains(name) {
            report.error(
                span.clone(),
                format!(
                    "prompt '{name}' has no sound file: there is no {name}.wav, .flac, .mp3 or \
                     .ogg in {}{}",
                    dir.display(),
                    did_you_mean(name, available.iter().map(String::as_str))
                ),
            );
        }
    }
    names
}
