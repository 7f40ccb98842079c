//! The configfs-tsm attester against a stand-in of the kernel's report interface (issue 18): a
//! FUSE file system, served by a test thread, with the attributes of Linux's
//! `Documentation/ABI/testing/configfs-tsm` — `mkdir` makes a report entry with `inblob`,
//! `outblob`, `auxblob`, `provider`, `generation`, `privlevel`, `privlevel_floor`; writing
//! `inblob` (at most 64 bytes) or `privlevel` increments `generation`; reading `outblob` gives
//! an SEV-SNP report whose `report_data` is `inblob`, signed by the sim chain, and `auxblob` the
//! certificate table with the sim VCEK. The attester and platform detection run unchanged on a
//! root folder under which the stand-in is mounted at `sys/kernel/config/tsm/report`.
//!
//! Needs `/dev/fuse` and the right to mount (root, or CAP_SYS_ADMIN): skipped with the reason
//! where either is missing, unless `CCR_REQUIRE_FUSE` is set (`.ci/run` sets it where the
//! machine has `/dev/fuse`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use ccr_attest::Platform;
use ccr_attest::attester::{self, CONFIGFS_TSM};
use ccr_attest::evidence::{Evidence, Trust};
use ccr_attest::sim::SimAuthority;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    Request, WriteFlags,
};

/// The report entry's attributes, in the kernel's order; inode = entry * 16 + index + 1.
const ATTRS: &[&str] = &[
    "inblob",
    "outblob",
    "auxblob",
    "provider",
    "generation",
    "privlevel",
    "privlevel_floor",
];

struct Entry {
    name: OsString,
    inblob: [u8; 64],
    generation: u64,
    privlevel: u32,
    out: Option<(u64, Vec<u8>, Vec<u8>)>,
}

struct TsmStandIn {
    authority: SimAuthority,
    entries: Mutex<BTreeMap<u64, Entry>>,
    next: AtomicU32,
    /// Reads of `outblob` during which "another writer" writes `inblob` of the same entry.
    races: Arc<AtomicU32>,
}

const TTL: Duration = Duration::ZERO;

fn attr(ino: u64, dir: bool) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: if dir { 0 } else { 4096 },
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir { 0o755 } else { 0o644 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

fn split(ino: u64) -> (u64, usize) {
    (ino / 16, (ino % 16) as usize)
}

impl TsmStandIn {
    fn entry_by_name(&self, name: &OsStr) -> Option<u64> {
        let e = self.entries.lock().unwrap();
        e.iter().find(|(_, v)| v.name == name).map(|(k, _)| *k)
    }

    fn content(&self, ino: u64) -> Option<Vec<u8>> {
        let (id, a) = split(ino);
        let mut entries = self.entries.lock().unwrap();
        let e = entries.get_mut(&id)?;
        Some(match ATTRS.get(a.checked_sub(1)?)? {
            &"provider" => b"sev_guest\n".to_vec(),
            &"generation" => format!("{}\n", e.generation).into_bytes(),
            &"privlevel" => format!("{}\n", e.privlevel).into_bytes(),
            &"privlevel_floor" => b"0\n".to_vec(),
            &"inblob" => return None,
            which => {
                if which == &"outblob"
                    && self
                        .races
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    // Another process wrote this entry's inblob between our write and read:
                    // the report is for its input.
                    e.inblob = [0xee; 64];
                    e.generation += 1;
                }
                if e.out.as_ref().map(|o| o.0) != Some(e.generation) {
                    let report = self.authority.report(&e.inblob, &[0x11; 48], &[0x22; 32]);
                    let aux = ccr_attest::certtable::build(&[("vcek", self.authority.vcek_der())]);
                    e.out = Some((e.generation, report.to_vec(), aux));
                }
                let out = e.out.as_ref().map(|o| {
                    if which == &"outblob" {
                        o.1.clone()
                    } else {
                        o.2.clone()
                    }
                });
                out?
            }
        })
    }
}

impl Filesystem for TsmStandIn {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = u64::from(parent);
        if parent == 1 {
            match self.entry_by_name(name) {
                Some(id) => reply.entry(&TTL, &attr(id * 16, true), Generation(0)),
                None => reply.error(Errno::ENOENT),
            }
        } else if let Some(i) = ATTRS.iter().position(|a| OsStr::new(a) == name)
            && self.entries.lock().unwrap().contains_key(&(parent / 16))
        {
            reply.entry(&TTL, &attr(parent + i as u64 + 1, false), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ino = u64::from(ino);
        let (id, a) = split(ino);
        if ino == 1 {
            reply.attr(&TTL, &attr(1, true));
        } else if self.entries.lock().unwrap().contains_key(&id) {
            reply.attr(&TTL, &attr(ino, a == 0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Opening an attribute with O_TRUNC (as `std::fs::write` does) is accepted, as configfs
        // accepts it.
        reply.attr(&TTL, &attr(u64::from(ino), false));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        if u64::from(parent) != 1 || self.entry_by_name(name).is_some() {
            return reply.error(Errno::EEXIST);
        }
        let id = u64::from(self.next.fetch_add(1, Ordering::SeqCst)) + 1;
        self.entries.lock().unwrap().insert(
            id,
            Entry {
                name: name.to_os_string(),
                inblob: [0; 64],
                generation: 0,
                privlevel: 0,
                out: None,
            },
        );
        reply.entry(&TTL, &attr(id * 16, true), Generation(0));
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.entry_by_name(name) {
            Some(id) => {
                self.entries.lock().unwrap().remove(&id);
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Attributes have no fixed size: every read reaches the file system.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.content(u64::from(ino)) {
            Some(c) => {
                let start = (offset as usize).min(c.len());
                let end = (start + size as usize).min(c.len());
                reply.data(&c[start..end]);
            }
            None => reply.error(Errno::EINVAL),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (id, a) = split(u64::from(ino));
        let mut entries = self.entries.lock().unwrap();
        let Some(e) = entries.get_mut(&id) else {
            return reply.error(Errno::ENOENT);
        };
        match ATTRS.get(a.wrapping_sub(1)) {
            Some(&"inblob") if offset == 0 && data.len() <= 64 => {
                e.inblob = [0; 64];
                e.inblob[..data.len()].copy_from_slice(data);
                e.generation += 1;
                reply.written(data.len() as u32);
            }
            Some(&"privlevel") => match std::str::from_utf8(data)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                Some(p) if p <= 3 => {
                    e.privlevel = p;
                    e.generation += 1;
                    reply.written(data.len() as u32);
                }
                _ => reply.error(Errno::EINVAL),
            },
            Some(&"inblob") => reply.error(Errno::EINVAL),
            _ => reply.error(Errno::EACCES),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ino = u64::from(ino);
        let mut list: Vec<(u64, FileType, OsString)> = vec![
            (ino, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        if ino == 1 {
            for (id, e) in self.entries.lock().unwrap().iter() {
                list.push((id * 16, FileType::Directory, e.name.clone()));
            }
        } else {
            for (i, a) in ATTRS.iter().enumerate() {
                list.push((ino + i as u64 + 1, FileType::RegularFile, (*a).into()));
            }
        }
        for (i, (n, k, name)) in list.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(n), (i + 1) as u64, k, name) {
                break;
            }
        }
        reply.ok();
    }
}

struct Mounted {
    _session: fuser::BackgroundSession,
    root: tempfile::TempDir,
    races: Arc<AtomicU32>,
    sim: tempfile::TempDir,
}

/// Prints why the test cannot run and skips it, or fails where `CCR_REQUIRE_FUSE` is set (CI,
/// where the machine has `/dev/fuse`).
fn skip(why: &str) -> Option<Mounted> {
    if std::env::var_os("CCR_REQUIRE_FUSE").is_some() {
        panic!("{why}, and CCR_REQUIRE_FUSE is set");
    }
    eprintln!("skipped: {why}");
    None
}

/// Mounts the stand-in at `<root>/sys/kernel/config/tsm/report`, or says why it cannot.
fn mount() -> Option<Mounted> {
    if !Path::new("/dev/fuse").exists() {
        return skip("/dev/fuse is absent (the configfs-tsm stand-in is a FUSE file system)");
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(CONFIGFS_TSM.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = tempfile::tempdir().unwrap();
    let races = Arc::new(AtomicU32::new(0));
    let fs = TsmStandIn {
        authority: SimAuthority::load_or_create(sim.path()).unwrap(),
        entries: Mutex::new(BTreeMap::new()),
        next: AtomicU32::new(0),
        races: races.clone(),
    };
    let mut cfg = fuser::Config::default();
    cfg.mount_options
        .push(fuser::MountOption::FSName("configfs-tsm-stand-in".into()));
    match fuser::spawn_mount(fs, &dir, &cfg) {
        Ok(s) => Some(Mounted {
            _session: s,
            root,
            races,
            sim,
        }),
        Err(e) => skip(&format!(
            "cannot mount the configfs-tsm stand-in (FUSE): {e}"
        )),
    }
}

fn verify(m: &Mounted, ev: &serde_json::Value) -> ccr_attest::VerifiedEvidence {
    // The stand-in signs with the sim chain: the `sim` verifier with its roots.
    let mut trust = Trust::new();
    trust.sim_roots = Some(ccr_attest::sim::load_roots(m.sim.path()).unwrap());
    Evidence::from_kbs("sim", ev)
        .unwrap()
        .verify(&trust)
        .unwrap()
}

#[test]
fn the_configfs_tsm_attester_runs_unchanged_on_the_kernel_interface() {
    let Some(m) = mount() else { return };
    // Detection reads the provider through a probe entry, and removes it.
    let d = attester::detect(m.root.path());
    assert_eq!(d.platform, Some(Platform::Snp), "{:?}", d.probes);
    assert!(d.probes[1].contains("provider sev_guest"), "{:?}", d.probes);
    let a = attester::for_platform(m.root.path(), Platform::Snp, "").unwrap();
    let report_data = [0x5au8; 64];
    let ev = a.evidence(&report_data).unwrap();
    let v = verify(&m, &ev);
    assert_eq!(v.claims().report_data, hex::encode(report_data));
    // The VCEK came from auxblob's certificate table.
    assert_eq!(ev["cert_chain"][0]["cert_type"], "vcek");
    // Every entry the attester made is gone.
    let dir = m.root.path().join(CONFIGFS_TSM.trim_start_matches('/'));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_generation_change_between_write_and_read_is_retried_then_refused() {
    let Some(m) = mount() else { return };
    let a = attester::for_platform(m.root.path(), Platform::Snp, "").unwrap();
    let report_data = [0x33u8; 64];
    // One race: the report read belongs to another input; the attester notices the moved
    // generation, asks again, and returns evidence for its own report_data.
    m.races.store(1, Ordering::SeqCst);
    let ev = a.evidence(&report_data).unwrap();
    assert_eq!(m.races.load(Ordering::SeqCst), 0, "the race happened");
    assert_eq!(
        verify(&m, &ev).claims().report_data,
        hex::encode(report_data)
    );
    // A race on every try: refused, naming the generation.
    m.races.store(u32::MAX, Ordering::SeqCst);
    let e = a.evidence(&report_data).unwrap_err().to_string();
    assert!(e.contains("generation"), "{e}");
    m.races.store(0, Ordering::SeqCst);
    let dir = m.root.path().join(CONFIGFS_TSM.trim_start_matches('/'));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}
