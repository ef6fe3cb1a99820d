//! `cargo xtask check-cuda`: builds the `cuda` feature (the plugin's and the tools'), which CI
//! does not. A CUDA toolkit found on the machine is used as it is; without one, NVIDIA's wheels
//! for CUDA [`CUDA_VERSION`] are installed from PyPI into a virtual environment in a cache
//! directory, and the build is pointed at them. No GPU or driver is needed: the build links
//! against a stub `libcuda.so` (as a toolkit's `lib/stubs` provides) and compiles the kernels
//! for compute capability `CUDA_COMPUTE_CAP` (80 unless set, or told by `nvidia-smi`).

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CUDA release installed from PyPI; cudarc (candle's CUDA binding) supports 11.4 to 13.4.
const CUDA_VERSION: &str = "13.4";

/// The PyPI requirement for that release: NVIDIA's meta-package pins matching wheels of nvcc
/// (with its C runtime headers and NVVM), the runtime, cuBLAS, cuRAND, NVRTC and CCCL, all of
/// which unpack into one toolkit-shaped directory, `site-packages/nvidia/cu13`.
const CUDA_REQUIREMENT: &str = "cuda-toolkit[nvcc,cudart,cublas,curand,nvrtc,cccl]==13.4.3";

/// The compute capability the kernels are compiled for when neither `CUDA_COMPUTE_CAP` nor
/// `nvidia-smi` says (Ampere, which candle's bf16 kernels need).
const DEFAULT_COMPUTE_CAP: &str = "80";

/// The variables cudarc's build script reads for the toolkit's root.
const CUDA_ROOT_VARS: [&str; 4] = [
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_ROOT",
    "CUDA_TOOLKIT_ROOT_DIR",
];

/// The builds this command checks: `cargo build` arguments, one build each.
const BUILDS: [&[&str]; 2] = [
    &["build", "-p", "echoic", "--features", "cuda"],
    &["build", "-p", "echoic-tools", "--features", "cuda"],
];

/// `cargo xtask check-cuda`: finds or installs a CUDA toolkit, then builds the `cuda` feature of
/// the plugin and of the tools with it.
pub fn check_cuda() -> Result<()> {
    let toolkit = match find_toolkit() {
        Some(nvcc) => {
            eprintln!("Using the CUDA toolkit at {}", nvcc.display());
            Toolkit::system(nvcc)?
        }
        None => {
            eprintln!("No CUDA toolkit found (nvcc on PATH, or in $CUDA_HOME, $CUDA_PATH or /usr/local/cuda)");
            install_toolkit()?
        }
    };
    eprintln!("nvcc: {}", nvcc_release(&toolkit.nvcc)?);

    let env = toolkit.build_env()?;
    eprintln!("\nThe builds run with:");
    for (key, value) in &env {
        if key == "PATH" {
            // The toolkit's bin directory, then the PATH as it was.
            let bin = std::env::split_paths(value).next().unwrap_or_default();
            eprintln!("  PATH={}:$PATH", bin.display());
        } else {
            eprintln!("  {key}={}", value.to_string_lossy());
        }
    }
    for build in BUILDS {
        eprintln!("\n$ cargo {}", build.join(" "));
        let status = Command::new(super::cargo())
            .args(build)
            .current_dir(super::root())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .status()
            .context("could not start cargo")?;
        if !status.success() {
            bail!(
                "`cargo {}` failed ({status}) with the CUDA toolkit at {}",
                build.join(" "),
                toolkit.root.display()
            );
        }
    }
    eprintln!(
        "\nThe `cuda` feature builds (CUDA toolkit at {}).",
        toolkit.root.display()
    );
    Ok(())
}

/// A CUDA toolkit to build with.
struct Toolkit {
    /// Its root: `bin/nvcc`, `include/`, `lib/` or `lib64/`.
    root: PathBuf,
    /// Its nvcc.
    nvcc: PathBuf,
    /// Whether this command installed it (then the cudarc variables point at it).
    installed: bool,
}

impl Toolkit {
    /// A toolkit found on the machine, from its nvcc.
    fn system(nvcc: PathBuf) -> Result<Self> {
        let root = nvcc
            .parent()
            .and_then(Path::parent)
            .with_context(|| format!("{}: nvcc is not in a bin directory", nvcc.display()))?
            .to_owned();
        Ok(Self {
            root,
            nvcc,
            installed: false,
        })
    }

    /// The environment for the builds: nvcc first on `PATH` (cudarc runs `nvcc --version` to
    /// learn the toolkit's version), `NVCC` for candle-kernels' build script, the root in
    /// cudarc's variables (where it looks for the libraries to link), and `CUDA_COMPUTE_CAP`
    /// unless it is set or `nvidia-smi` can tell it.
    fn build_env(&self) -> Result<Vec<(String, OsString)>> {
        let bin = self.nvcc.parent().context("nvcc has no directory")?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(bin.to_owned()).chain(std::env::split_paths(&path)),
        )
        .context("the toolkit's path cannot go on PATH")?;
        let mut env = vec![
            ("PATH".to_owned(), path),
            ("NVCC".to_owned(), self.nvcc.clone().into_os_string()),
        ];
        let root_is_set = CUDA_ROOT_VARS
            .iter()
            .any(|var| std::env::var_os(var).is_some());
        if self.installed || !root_is_set {
            env.push(("CUDA_HOME".to_owned(), self.root.clone().into_os_string()));
            if self.installed {
                // Override a stale setting for another toolkit.
                for var in &CUDA_ROOT_VARS[1..] {
                    env.push(((*var).to_owned(), self.root.clone().into_os_string()));
                }
            }
        }
        if std::env::var_os("CUDA_COMPUTE_CAP").is_none() && !nvidia_smi_works() {
            eprintln!("No GPU to ask (nvidia-smi): compiling the kernels for compute capability {DEFAULT_COMPUTE_CAP}");
            env.push(("CUDA_COMPUTE_CAP".to_owned(), DEFAULT_COMPUTE_CAP.into()));
        }
        Ok(env)
    }
}

/// The nvcc of a CUDA toolkit on the machine: on `PATH`, or in `bin/` of `$CUDA_HOME`,
/// `$CUDA_PATH` or `/usr/local/cuda`.
fn find_toolkit() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nvcc"));
    let in_roots = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .chain([PathBuf::from("/usr/local/cuda")])
        .map(|root| root.join("bin/nvcc"));
    on_path.chain(in_roots).find(|nvcc| nvcc.is_file())
}

/// The cache directory for the installed toolkit: `$ECHOIC_CUDA_CACHE`, else
/// `$XDG_CACHE_HOME/echoic/cuda-<version>`, else `~/.cache/echoic/cuda-<version>`.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ECHOIC_CUDA_CACHE") {
        return Ok(dir.into());
    }
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(cache.join("echoic").join(format!("cuda-{CUDA_VERSION}")))
}

/// Installs [`CUDA_REQUIREMENT`] into a virtual environment in [`cache_dir`] (once: a later
/// run finds it there), then gives it what a toolkit's linker needs and the wheels lack.
fn install_toolkit() -> Result<Toolkit> {
    let cache = cache_dir()?;
    let venv = cache.join("venv");
    let done = cache.join("installed");
    if done.is_file() {
        eprintln!(
            "Using the CUDA {CUDA_VERSION} toolkit installed in {}",
            cache.display()
        );
    } else {
        eprintln!(
            "Installing CUDA {CUDA_VERSION} from PyPI into {}",
            cache.display()
        );
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("could not create {}", cache.display()))?;
        let venv_arg = venv.to_str().context("non-UTF-8 cache path")?;
        super::run("python3", &["-m", "venv", venv_arg])
            .context("could not create the virtual environment (is python3-venv installed?)")?;
        let pip = venv.join("bin/pip");
        super::run(
            pip.to_str().context("non-UTF-8 cache path")?,
            &["install", "--disable-pip-version-check", CUDA_REQUIREMENT],
        )
        .context("could not install the CUDA toolkit from PyPI")?;
    }
    let root = wheel_root(&venv)?;
    link_unversioned(&root.join("lib"))?;
    write_libcuda_stub(&root)?;
    if !done.is_file() {
        std::fs::write(&done, format!("{CUDA_REQUIREMENT}\n"))
            .with_context(|| format!("could not write {}", done.display()))?;
    }
    Ok(Toolkit {
        nvcc: root.join("bin/nvcc"),
        root,
        installed: true,
    })
}

/// The toolkit-shaped directory the wheels unpack into: `lib/python3.*/site-packages/nvidia/cu13`
/// in the virtual environment.
fn wheel_root(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries =
        std::fs::read_dir(&lib).with_context(|| format!("could not read {}", lib.display()))?;
    for entry in entries {
        let root = entry?.path().join("site-packages/nvidia/cu13");
        if root.join("bin/nvcc").is_file() {
            return Ok(root);
        }
    }
    bail!(
        "no nvidia/cu13/bin/nvcc under {}: remove {} and run again",
        lib.display(),
        venv.display()
    )
}

/// Adds the linker names the wheels leave out: `libcublas.so` for `libcublas.so.13` and so on.
fn link_unversioned(lib: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(lib).with_context(|| format!("could not read {}", lib.display()))?;
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, _version)) = name.split_once(".so.") else {
            continue;
        };
        let link = lib.join(format!("{stem}.so"));
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(name, &link)
                .with_context(|| format!("could not create {}", link.display()))?;
        }
    }
    Ok(())
}

/// Writes `lib/stubs/libcuda.so`, which the wheels lack (the driver ships the real one): a
/// library with the soname `libcuda.so.1` that defines every driver function named in
/// `include/cuda.h`, so the build links without a driver and the binaries load the real one.
fn write_libcuda_stub(root: &Path) -> Result<()> {
    let stubs = root.join("lib/stubs");
    let stub = stubs.join("libcuda.so");
    if stub.is_file() {
        return Ok(());
    }
    let header = root.join("include/cuda.h");
    let header = std::fs::read_to_string(&header)
        .with_context(|| format!("could not read {}", header.display()))?;
    let mut names = driver_function_names(&header);
    // Declared by cudarc for every CUDA version, though CUDA 12 dropped it from cuda.h.
    names.push("cuProfilerInitialize".to_owned());
    names.sort();
    names.dedup();
    let source: String = names
        .iter()
        .map(|name| format!("void {name}(void) {{}}\n"))
        .collect();
    std::fs::create_dir_all(&stubs)
        .with_context(|| format!("could not create {}", stubs.display()))?;
    let c_file = stubs.join("libcuda-stub.c");
    std::fs::write(&c_file, source)
        .with_context(|| format!("could not write {}", c_file.display()))?;
    eprintln!(
        "Writing a stub libcuda.so ({} functions) to {}",
        names.len(),
        stubs.display()
    );
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    super::run(
        &cc,
        &[
            "-shared",
            "-fPIC",
            "-fno-builtin",
            "-Wl,-soname,libcuda.so.1",
            "-o",
            stub.to_str().context("non-UTF-8 cache path")?,
            c_file.to_str().context("non-UTF-8 cache path")?,
        ],
    )
    .context("could not build the stub libcuda.so (a C compiler is needed, as nvcc needs one)")
}

/// The driver API's function names in `cuda.h`: every identifier `cu` + capital letter, which
/// takes in the versioned names its macros map to (`cuMemAlloc_v2`, `cuMemcpy_ptds`).
fn driver_function_names(header: &str) -> Vec<String> {
    header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            word.strip_prefix("cu")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| c.is_ascii_uppercase())
        })
        .map(str::to_owned)
        .collect()
}

/// The release line of `nvcc --version` ("Cuda compilation tools, release 13.4, V13.4.92").
fn nvcc_release(nvcc: &Path) -> Result<String> {
    let output = Command::new(nvcc)
        .arg("--version")
        .output()
        .with_context(|| format!("could not run {}", nvcc.display()))?;
    if !output.status.success() {
        bail!("`{} --version` failed ({})", nvcc.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .lines()
        .find(|line| line.contains("release"))
        .unwrap_or("(no release line)")
        .to_owned())
}

/// Whether `nvidia-smi` runs (then candle-kernels asks it for the GPU's compute capability).
fn nvidia_smi_works() -> bool {
    Command::new("nvidia-smi")
        .arg("--query-gpu=compute_cap")
        .arg("--format=csv,noheader")
        .output()
        .is_ok_and(|o| o.status.success())
}
