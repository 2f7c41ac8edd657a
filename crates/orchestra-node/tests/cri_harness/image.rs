//! A container image made on the spot from the host's static busybox: an OCI image layout (one
//! layer: busybox and a link per applet in /bin) packed as a tar, which `ctr images import`
//! takes. No registry is needed.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The platform's architecture as OCI names it.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, data)
        .expect("append a file to the tar");
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(mode);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, std::io::empty())
        .expect("append a directory to the tar");
}

fn append_link(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    header.set_mtime(0);
    builder
        .append_link(&mut header, path, target)
        .expect("append a link to the tar");
}

/// The root filesystem layer: /bin/busybox, /bin/<applet> links, and the usual directories.
fn layer(busybox: &Path, applets: &[String]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("dev/", 0o755),
        ("etc/", 0o755),
        ("proc/", 0o555),
        ("root/", 0o700),
        ("sys/", 0o555),
        ("tmp/", 0o1777),
    ] {
        append_dir(&mut builder, dir, mode);
    }
    let binary = std::fs::read(busybox).expect("read busybox");
    append_file(&mut builder, "bin/busybox", 0o755, &binary);
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        append_link(&mut builder, &format!("bin/{applet}"), "busybox");
    }
    append_file(
        &mut builder,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    append_file(
        &mut builder,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    );
    builder.into_inner().expect("finish the layer")
}

/// Writes an OCI image layout tar for `reference` to `out`. The image's default command
/// sleeps forever, which makes it usable as the sandbox ("pause") image too.
pub fn write_oci_archive(busybox: &Path, applets: &[String], reference: &str, out: &Path) {
    let layer = layer(busybox, applets);
    let layer_digest = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sleep", "2147483647"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created_by": "orchestra cri_runtime test: busybox-static"}],
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer.len(),
        }],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest json");
    let manifest_digest = sha256_hex(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "platform": {"architecture": oci_arch(), "os": "linux"},
            "annotations": {
                "org.opencontainers.image.ref.name": reference,
                "io.containerd.image.name": reference,
            },
        }],
    });
    let index = serde_json::to_vec(&index).expect("index json");

    let mut archive = tar::Builder::new(Vec::new());
    append_file(
        &mut archive,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    append_file(&mut archive, "index.json", 0o644, &index);
    append_dir(&mut archive, "blobs/", 0o755);
    append_dir(&mut archive, "blobs/sha256/", 0o755);
    for (digest, blob) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        append_file(&mut archive, &format!("blobs/sha256/{digest}"), 0o644, blob);
    }
    let archive = archive.into_inner().expect("finish the archive");
    std::fs::write(out, archive).expect("write the image archive");
}

/// Whether the ELF file `bytes` is statically linked (has no PT_INTERP program header), so
/// that it runs in an image without a C library.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes.get(at..at + 8).map(|b| {
            let mut a = [0; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    // 64-bit little-endian ELF only (the platforms this test runs on).
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| u32_at(phoff + i * usize::from(phentsize)) != Some(PT_INTERP))
}
