//! The ONNX Runtime shared library: where it is found, which version it is, and the one
//! process-wide ort environment built on it.
//!
//! Owns the only `ort::init_from` call in the crate. Locating the library is a pure
//! function ([`locate_runtime`]) so the search order is testable without touching the
//! process environment; loading is a `Result`, never a panic, and happens once per
//! process (a `OnceLock` caches the outcome, success or failure).

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release the crate is built and tested against (ort 2.0.0-rc.15,
/// C API 31). Any 1.31.x patch release is accepted; anything else is refused.
pub const EXPECTED_ORT_VERSION: &str = "1.31.1";
/// Any release starting so is accepted.
pub const ACCEPTED_VERSION_PREFIX: &str = "1.31.";
/// The override the binary and the tests honour before their own search.
pub const DYLIB_ENV_VAR: &str = "ORT_DYLIB_PATH";
const LIB_FILE: &str = "libonnxruntime.so";
/// How to get the library, for errors and `handful doctor`.
pub const FIX_IT: &str = "run `bash models/setup.sh` from the repository root (it installs the pinned \
onnxruntime wheel into .venv and copies its library to models/runtime/libonnxruntime.so), or set \
ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31.x";

/// Why the runtime could not be used. `Clone`: the outcome of the one load is cached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found; searched {searched:?}; to fix: {FIX_IT}")]
    NotFound { searched: Vec<PathBuf> },
    #[error("cannot load ONNX Runtime from {path}: {message}; to fix: {FIX_IT}")]
    Open { path: PathBuf, message: String },
    #[error(
        "ONNX Runtime at {path} is version {found}, this build needs {EXPECTED_ORT_VERSION} \
         (1.31.x); to fix: {FIX_IT}"
    )]
    Version { path: PathBuf, found: String },
    #[error("ONNX Runtime at {path} loaded but its environment failed: {message}")]
    Environment { path: PathBuf, message: String },
}

/// Which library was loaded, for start-up reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub path: PathBuf,
    pub version: String,
}

struct Runtime {
    info: RuntimeInfo,
    environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();

/// Where to look, in order: `env_override` (the value of `ORT_DYLIB_PATH`; when set and
/// non-empty it is the only candidate, so a wrong override is an error rather than
/// silently replaced), then `<dir of exe>/../../models/runtime/libonnxruntime.so` (a
/// binary in `target/<profile>/`), then the repository this crate was compiled from.
pub fn locate_runtime(
    env_override: Option<&OsStr>,
    exe: Option<&Path>,
) -> Result<PathBuf, RuntimeError> {
    let candidates = candidate_paths(env_override, exe);
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(RuntimeError::NotFound {
            searched: candidates,
        }),
    }
}

fn candidate_paths(env_override: Option<&OsStr>, exe: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = env_override.filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    let mut out = Vec::new();
    if let Some(dir) = exe.and_then(Path::parent) {
        out.push(dir.join("../../models/runtime").join(LIB_FILE));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/runtime")
            .join(LIB_FILE),
    );
    out
}

/// Loads the runtime once per process (located with [`locate_runtime`] from the real
/// `ORT_DYLIB_PATH` and executable) and reports which library it is. Later calls return
/// the cached outcome.
pub fn ensure_runtime() -> Result<RuntimeInfo, RuntimeError> {
    runtime().map(|r| r.info.clone())
}

pub(crate) fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    runtime().map(|r| &r.environment)
}

fn runtime() -> Result<&'static Runtime, RuntimeError> {
    RUNTIME
        .get_or_init(|| {
            let env_override = std::env::var_os(DYLIB_ENV_VAR);
            let exe = std::env::current_exe().ok();
            let path = locate_runtime(env_override.as_deref(), exe.as_deref())?;
            load(&path)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn load(path: &Path) -> Result<Runtime, RuntimeError> {
    let version = runtime_version(path)?;
    if !version.starts_with(ACCEPTED_VERSION_PREFIX) {
        return Err(RuntimeError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let environment = ort::init_from(path)
        .map_err(|e| RuntimeError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .with_name("handful")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Environment {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Runtime {
        info: RuntimeInfo {
            path: path.to_path_buf(),
            version,
        },
        environment,
    })
}

/// The version of the ONNX Runtime library at `path`, asked of the library itself
/// (`OrtGetApiBase()->GetVersionString()`) before ort uses it: ort only refuses versions
/// older than its API level, we want 1.31.x exactly. Loads (and keeps loaded) the file.
pub fn runtime_version(path: &Path) -> Result<String, RuntimeError> {
    let open_error = |message: String| RuntimeError::Open {
        path: path.to_path_buf(),
        message,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| open_error("the path contains a NUL byte".into()))?;
    // SAFETY: `c_path` is a valid C string. The handle is deliberately never closed: ort
    // opens the same library next (the loader reference-counts it) and unloading ONNX
    // Runtime while ort holds function pointers into it would be unsound.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(open_error(dl_error()));
    }
    // SAFETY: `handle` is a live library handle and the symbol name is a C string literal.
    let symbol = unsafe { libc::dlsym(handle, c"OrtGetApiBase".as_ptr()) };
    if symbol.is_null() {
        return Err(open_error("it does not export OrtGetApiBase".into()));
    }
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: OrtGetApiBase has this signature in every ONNX Runtime release (C ABI);
    // the returned base and version string are static in the library, never freed.
    let version = unsafe {
        let get_api_base: GetApiBase = std::mem::transmute::<*mut libc::c_void, GetApiBase>(symbol);
        let base = get_api_base();
        if base.is_null() {
            return Err(open_error("OrtGetApiBase returned null".into()));
        }
        CStr::from_ptr(((*base).GetVersionString)())
    };
    Ok(version.to_string_lossy().into_owned())
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call
    // on this thread; it is copied out at once.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "dlopen failed".into()
    } else {
        // SAFETY: non-null, NUL-terminated (see above).
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}
