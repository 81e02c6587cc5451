//! Handler projects: `spool new` writes one from a template compiled into the binary, and
//! `spool build` builds it as its `spool.toml` says, installing the toolchain pieces the
//! template pins where they are missing. `spool handler upload NAME DIR` builds a project
//! folder the same way before uploading it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

/// A handler project's manifest, beside its sources (and beside a component uploaded alone,
/// for its schedules).
pub const MANIFEST: &str = "spool.toml";

/// `spool.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[handler]`: what the handler is called.
    pub handler: Option<HandlerSection>,
    /// `[build]`: how `spool build` builds the component.
    pub build: Option<BuildSection>,
    /// `[[schedule]]` tables: each a `PUT /v1/schedules/{name}` body, `handler` defaulting to
    /// the uploaded handler.
    #[serde(default)]
    pub schedule: Vec<toml::Table>,
}

/// `[handler]` of `spool.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSection {
    /// The handler's name.
    pub name: String,
}

/// `[build]` of `spool.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// What to install before building, when missing.
    pub toolchain: Option<Lang>,
    /// The build command, run by `sh -c` in the project's folder.
    pub command: String,
    /// The component the command writes, relative to the project's folder.
    pub component: PathBuf,
}

impl Manifest {
    /// Reads the `spool.toml` in `dir`; `None` when there is none.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let manifest = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        Ok(Some(manifest))
    }
}

/// A language a handler project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the `spool-guest` SDK.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
    /// C, built with wit-bindgen, clang and wasm-tools (the template's build.sh installs them).
    C,
}

/// Arguments of `spool new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The handler's name (letters, digits, `-`, `_`, `.`); also the folder's, unless --dir.
    name: String,
    /// The language of the handler.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The folder to create [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rust: the `guest-sdk/` folder of a Spool checkout to depend on [default: the checkout
    /// this binary was built from].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// Arguments of `spool build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The handler project's folder (holding `spool.toml`).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// The contract every template builds against.
const JOB_WIT: &str = include_str!("../../../wit/job.wit");

/// One file of a template: its path in the project and its text, with `{{name}}`,
/// `{{crate}}` and `{{sdk}}` still to fill in.
type TemplateFile = (&'static str, &'static str);

/// Declares a template's files, read from `host/templates/<lang>/`.
macro_rules! template {
    ($lang:literal: $($path:literal => $file:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $lang, "/", $file)))),+]
    };
}

const RUST: &[TemplateFile] = template!("rust":
    "Cargo.toml" => "Cargo.toml",
    "src/lib.rs" => "src/lib.rs",
    "spool.toml" => "spool.toml",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const JS: &[TemplateFile] = template!("js":
    "app.js" => "app.js",
    // The example's adapter between `run` and a handler function, as it is.
    "spool.js" => "../../../examples/js-hello/spool.js",
    "package.json" => "package.json",
    "spool.toml" => "spool.toml",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const C: &[TemplateFile] = template!("c":
    "handler.c" => "handler.c",
    // The example's plumbing between the bindings and a handler, as it is.
    "spool.c" => "../../../examples/c-hello/spool.c",
    "spool.h" => "../../../examples/c-hello/spool.h",
    "build.sh" => "build.sh",
    "spool.toml" => "spool.toml",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const PYTHON: &[TemplateFile] = template!("python":
    "app.py" => "app.py",
    "requirements.txt" => "requirements.txt",
    "spool.toml" => "spool.toml",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

/// Runs `spool new`.
pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        spool::model::is_valid_name(&args.name),
        "{:?} is not a valid handler name: use letters, digits, '-', '_' and '.'",
        args.name
    );
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let crate_name = args.name.replace(['-', '.'], "_");
    let sdk = match args.lang {
        Lang::Rust => sdk_path(args.sdk.as_deref())?,
        Lang::Python | Lang::Js | Lang::C => String::new(),
    };
    let files = match args.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    };
    for (path, text) in files {
        let target = dir.join(path);
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk);
        write(&target, &text)?;
    }
    // Languages without an SDK bind the contract itself, at build time.
    if args.lang != Lang::Rust {
        write(&dir.join("wit/job.wit"), &handler_world_only(JOB_WIT))?;
    }
    println!(
        "created {} ({:?} handler {:?})\n\nnext:\n  cd {}\n  spool build\n  spool run {} --payload '{{\"name\":\"ada\"}}'",
        dir.display(),
        args.lang,
        args.name,
        dir.display(),
        component_of(args.lang, &crate_name),
    );
    Ok(ExitCode::SUCCESS)
}

/// `wit` without the `http-handler` world (from its doc comment on), which refers to WASI
/// packages a template does not carry.
fn handler_world_only(wit: &str) -> String {
    let Some(world) = wit.find("\nworld http-handler") else {
        return wit.to_string();
    };
    // Back over the world's doc comment to the blank line before it.
    let start = wit[..world].rfind("\n\n").map_or(world, |blank| blank + 1);
    let end = wit[world..]
        .find("\n}")
        .map_or(wit.len(), |close| world + close + 2);
    format!("{}{}", &wit[..start], &wit[end..])
}

/// Writes `text` to `path`, creating its folder.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Where a template's build writes its component, for the hint `spool new` prints.
fn component_of(lang: Lang, crate_name: &str) -> String {
    match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
        Lang::Python | Lang::Js | Lang::C => format!("build/{crate_name}.wasm"),
    }
}

/// The `spool-guest` path a Rust template depends on: `sdk` when given, else the checkout
/// this binary was built from, when it is still there.
fn sdk_path(sdk: Option<&Path>) -> anyhow::Result<String> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let path = sdk.unwrap_or(&built_from);
    let path = std::fs::canonicalize(path)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file());
    let Some(path) = path else {
        bail!(
            "spool-guest is not on crates.io yet: pass --sdk PATH, the guest-sdk/ folder of a \
             Spool checkout"
        );
    };
    Ok(path.display().to_string())
}

/// Runs `spool build`.
pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = build_project(&args.dir)?;
    println!("{}", built.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the project in `dir` as its `spool.toml` says; prints the component's size and
/// digest, and returns its path.
pub fn build_project(dir: &Path) -> anyhow::Result<PathBuf> {
    let Some(manifest) = Manifest::read(dir)? else {
        bail!(
            "no {MANIFEST} in {}: not a handler project (create one with `spool new`)",
            dir.display()
        );
    };
    let Some(build) = manifest.build else {
        bail!("{}: no [build] section", dir.join(MANIFEST).display());
    };
    let mut command = Command::new("sh");
    // The tools' chatter goes to stderr: stdout is the component's path alone.
    command
        .arg("-c")
        .arg(&build.command)
        .current_dir(dir)
        .stdout(std::io::stderr());
    match build.toolchain {
        Some(Lang::Rust) => install_rust_target()?,
        Some(Lang::Python) => {
            let bin = install_python(dir)?;
            let path = std::env::var_os("PATH").unwrap_or_default();
            command.env("PATH", prepend(&bin, &path)?);
            // componentize-py then looks for packages in the venv, not the system's.
            if let Some(venv) = bin.parent() {
                command.env("VIRTUAL_ENV", venv);
            }
        }
        Some(Lang::Js) => {
            let bin = install_js(dir)?;
            let path = std::env::var_os("PATH").unwrap_or_default();
            command.env("PATH", prepend(&bin, &path)?);
        }
        // build.sh installs what it needs itself.
        Some(Lang::C) | None => {}
    }
    let started = Instant::now();
    let name = manifest
        .handler
        .map_or_else(|| "handler".to_string(), |h| h.name);
    eprintln!("spool build: {name}: {}", build.command);
    let status = command.status().context("cannot run sh")?;
    ensure!(status.success(), "the build command failed ({status})");
    let component = dir.join(&build.component);
    let bytes = std::fs::read(&component).with_context(|| {
        format!(
            "the build succeeded but wrote no {} (the component [build] names)",
            component.display()
        )
    })?;
    eprintln!(
        "spool build: built {name}: {} ({} bytes, sha256 {}) in {:.1} s",
        component.display(),
        bytes.len(),
        spool::runtime::cache::digest(&bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(component)
}

/// Adds the wasm32-wasip2 target with rustup when it is missing.
fn install_rust_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        // No rustup: the toolchain is managed some other way; the build says what is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("spool build: rustup target add wasm32-wasip2");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()?;
    ensure!(status.success(), "rustup target add wasm32-wasip2 failed");
    Ok(())
}

/// Creates `dir/.venv` and installs `requirements.txt` into it when its tools are missing
/// or older than the requirements; returns the venv's `bin`.
fn install_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = dir.join(".venv");
    // A `.venv` linked to a folder elsewhere is made there.
    let venv = std::fs::canonicalize(&venv).unwrap_or(venv);
    let bin = venv.join("bin");
    let requirements = dir.join("requirements.txt");
    let stamp = venv.join(".spool-installed");
    if !bin.join("python").exists() {
        let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        eprintln!("spool build: creating {}", venv.display());
        let status = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .with_context(|| {
                format!("cannot run {python:?}: Python 3 with venv is needed (or set PYTHON)")
            })?;
        ensure!(status.success(), "creating the virtualenv failed");
    }
    if requirements.is_file() && newer(&requirements, &stamp) {
        eprintln!(
            "spool build: installing requirements.txt into {}",
            venv.display()
        );
        let status = Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements)
            .status()?;
        ensure!(status.success(), "pip install -r requirements.txt failed");
        std::fs::write(&stamp, "")?;
    }
    Ok(std::fs::canonicalize(bin)?)
}

/// Runs `npm install` in `dir` when `node_modules` is missing or older than `package.json`;
/// returns `node_modules/.bin`.
fn install_js(dir: &Path) -> anyhow::Result<PathBuf> {
    let modules = dir.join("node_modules");
    if newer(
        &dir.join("package.json"),
        &modules.join(".package-lock.json"),
    ) {
        eprintln!("spool build: npm install");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .stdout(std::io::stderr())
            .status()
            .context("cannot run npm: Node.js 20 or newer with npm is needed")?;
        ensure!(status.success(), "npm install failed");
    }
    Ok(std::fs::canonicalize(modules.join(".bin"))?)
}

/// Whether `source` changed after `stamp` was written (or there is no stamp).
fn newer(source: &Path, stamp: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(source), modified(stamp)) {
        (Some(source), Some(stamp)) => source > stamp,
        _ => true,
    }
}

/// `dir` put first on `path`.
fn prepend(dir: &Path, path: &OsString) -> anyhow::Result<OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(path));
    Ok(std::env::join_paths(dirs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_s_wit_has_the_handler_world_and_not_the_http_one() {
        let wit = handler_world_only(JOB_WIT);
        assert!(wit.contains("world handler {"));
        assert!(!wit.contains("http-handler {"), "{wit}");
        assert!(!wit.contains("import wasi:http"));
        assert!(wit.trim_end().ends_with('}'));
    }
}
