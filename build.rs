//! Embeds the web UI: every file under src/http/ui/assets/ becomes an entry of a static
//! table (`ui_assets.rs` in OUT_DIR) that `http::ui` serves, so `cargo build` alone gives
//! a binary with its UI and nothing is read from disk at run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const ASSETS: &str = "src/http/ui/assets";

fn main() {
    println!("cargo:rerun-if-changed={ASSETS}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(ASSETS);
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("pub(crate) static ASSETS: &[(&str, &[u8], u64)] = &[\n");
    for file in files {
        let relative = file.strip_prefix(&root).expect("under the assets folder");
        let url = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(&file).expect("an asset file is readable");
        // The ETag: FNV-1a of the content, so a browser revalidates cheaply and an asset
        // that changed with a new binary is fetched again.
        let tag = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        writeln!(
            table,
            "    ({url:?}, include_bytes!({:?}), {tag:#x}),",
            file.display()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("ui_assets.rs"), table).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            files.push(path);
        }
    }
}
