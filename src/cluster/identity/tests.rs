use super::*;

const PEERS: &str = "rabbit@n1=127.0.0.1:25672,rabbit@n2=127.0.0.2:25672,rabbit@n3=127.0.0.3:25672";

/// A scratch directory holding a private cookie and an empty data directory; removed on
/// drop.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let root =
            std::env::temp_dir().join(format!("warren-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("data")).unwrap();
        let s = Scratch { root };
        s.cookie(b"secret\n", 0o600);
        s
    }

    fn cookie(&self, bytes: &[u8], mode: u32) {
        let path = self.cookie_path();
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn cookie_path(&self) -> PathBuf {
        self.root.join("cookie")
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn resolve(&self, node: &str, peers: Option<&str>) -> Result<Option<Identity>, String> {
        let cookie = self.cookie_path();
        let data = self.data();
        resolve(&Start {
            node,
            peers,
            cookie_file: &cookie,
            data_dir: &data,
            in_memory: false,
        })
    }

    fn refusal(&self, node: &str, peers: Option<&str>) -> String {
        self.resolve(node, peers).expect_err("a refusal")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[test]
fn peers_are_sorted_and_numbered_by_name() {
    let peers = parse_peers("rabbit@n3=h3:1, rabbit@n1=h1:2,rabbit@n2=[::1]:3").unwrap();
    assert_eq!(names(&peers), ["rabbit@n1", "rabbit@n2", "rabbit@n3"]);
    assert_eq!(peers[1].addr, "[::1]:3");
    assert_eq!(node_id(&peers, "rabbit@n3"), Some(3));
    assert_eq!(node_id(&peers, "rabbit@n4"), None);
}

#[test]
fn malformed_and_repeated_peers_are_refused() {
    for bad in [
        "n2:25672",
        "rabbit@n2=",
        "=h:1",
        "rabbit@n2=h:port",
        "rabbit@n2=h",
        "",
    ] {
        let list = format!("rabbit@n1=h:1,{bad}");
        assert_eq!(
            parse_peers(&list).unwrap_err(),
            format!("--peers: '{bad}' is not NAME=HOST:PORT")
        );
    }
    assert_eq!(
        parse_peers("rabbit@n2=a:1,rabbit@n1=b:1,rabbit@n2=c:1").unwrap_err(),
        "--peers: 'rabbit@n2' is listed twice"
    );
}

#[test]
fn first_start_writes_cluster_json_and_later_starts_read_it() {
    let s = Scratch::new("first");
    let id = s.resolve("rabbit@n2", Some(PEERS)).unwrap().unwrap();
    assert_eq!(
        (id.id, id.cookie.as_slice(), id.cluster_id),
        (2, &b"secret"[..], None)
    );
    let text = fs::read_to_string(s.data().join("cluster.json")).unwrap();
    assert_eq!(
        text,
        "{\"format\":1,\"node\":\"rabbit@n2\",\"peers\":[\"rabbit@n1\",\"rabbit@n2\",\"rabbit@n3\"]}\n"
    );
    assert!(!s.data().join("cluster.json.tmp").exists());

    let mut again = s.resolve("rabbit@n2", Some(PEERS)).unwrap().unwrap();
    assert_eq!(again, id);
    let cluster = *b"\x5f\x0c\x0b\x6e\x8c\x2a\x4d\x1e\x9b\x7a\x3c\x5d\x2e\x1f\x0a\x9b";
    again.record_cluster_id(cluster).unwrap();
    let text = fs::read_to_string(s.data().join("cluster.json")).unwrap();
    assert!(
        text.contains("\"cluster_id\":\"5f0c0b6e8c2a4d1e9b7a3c5d2e1f0a9b\""),
        "{text}"
    );
    let reread = s.resolve("rabbit@n2", Some(PEERS)).unwrap().unwrap();
    assert_eq!(reread.cluster_id, Some(cluster));
}

#[test]
fn node_not_among_peers() {
    let s = Scratch::new("notamong");
    assert_eq!(
        s.refusal("rabbit@n4", Some(PEERS)),
        "--node-name 'rabbit@n4' is not one of --peers (rabbit@n1, rabbit@n2, rabbit@n3)"
    );
}

#[test]
fn peers_with_in_memory() {
    let s = Scratch::new("inmem");
    let (cookie, data) = (s.cookie_path(), s.data());
    let start = Start {
        node: "rabbit@n1",
        peers: Some(PEERS),
        cookie_file: &cookie,
        data_dir: &data,
        in_memory: true,
    };
    assert_eq!(
        resolve(&start).unwrap_err(),
        "--peers needs a data directory: a cluster node keeps its Raft log on disk"
    );
    let single = Start {
        peers: None,
        ..start
    };
    assert_eq!(resolve(&single), Ok(None));
}

#[test]
fn cookie_refusals() {
    let s = Scratch::new("cookie");
    let path = s.cookie_path().display().to_string();
    s.cookie(b"secret", 0o640);
    assert_eq!(
        s.refusal("rabbit@n1", Some(PEERS)),
        format!("cluster cookie file '{path}' must be readable by its owner only (chmod 600)")
    );
    s.cookie(b"\n", 0o600);
    assert_eq!(
        s.refusal("rabbit@n1", Some(PEERS)),
        format!(
            "cluster cookie file '{path}' is empty: every node of a cluster needs the same cookie"
        )
    );
    s.cookie(&[b'x'; 256], 0o400);
    assert_eq!(
        s.refusal("rabbit@n1", Some(PEERS)),
        format!("cluster cookie file '{path}' holds 256 bytes; a cookie is 1 to 255 bytes")
    );
    s.cookie(&[b'x'; 255], 0o400);
    assert_eq!(
        s.resolve("rabbit@n1", Some(PEERS))
            .unwrap()
            .unwrap()
            .cookie
            .len(),
        255
    );
    fs::remove_file(s.cookie_path()).unwrap();
    assert_eq!(
        s.refusal("rabbit@n1", Some(PEERS)),
        format!(
            "cluster cookie file '{path}' not found: every node of a cluster needs the same cookie"
        )
    );
}

#[test]
fn data_directory_of_another_node() {
    let s = Scratch::new("othernode");
    s.resolve("rabbit@n2", Some(PEERS)).unwrap();
    assert_eq!(
        s.refusal("rabbit@n1", Some(PEERS)),
        format!(
            "data directory '{}' belongs to node 'rabbit@n2', not to 'rabbit@n1' (--node-name)",
            s.data().display()
        )
    );
}

#[test]
fn data_directory_of_other_peers() {
    let s = Scratch::new("otherpeers");
    s.resolve("rabbit@n1", Some(PEERS)).unwrap();
    let other = "rabbit@n1=h:1,rabbit@n2=h:2,rabbit@x=h:3";
    assert_eq!(
        s.refusal("rabbit@n1", Some(other)),
        format!(
            "--peers names (rabbit@n1, rabbit@n2, rabbit@x) but data directory '{}' belongs to \
             a cluster of (rabbit@n1, rabbit@n2, rabbit@n3); phase 1 cannot change membership",
            s.data().display()
        )
    );
    // Other addresses for the same names are fine: addresses may change between restarts.
    let moved = "rabbit@n1=h:1,rabbit@n2=h:2,rabbit@n3=h:3";
    assert!(s.resolve("rabbit@n1", Some(moved)).is_ok());
}

#[test]
fn single_node_data_directory() {
    let expected = |s: &Scratch| {
        format!(
            "data directory '{}' holds a single-node broker's data; start a cluster node on \
             an empty directory and import the definitions",
            s.data().display()
        )
    };
    let s = Scratch::new("singledefs");
    fs::write(s.data().join("definitions.json"), b"{}").unwrap();
    assert_eq!(s.refusal("rabbit@n1", Some(PEERS)), expected(&s));

    let s = Scratch::new("singlesegs");
    fs::create_dir_all(s.data().join("msgs")).unwrap();
    assert!(
        s.resolve("rabbit@n1", Some(PEERS)).is_ok(),
        "an empty msgs/ is no data"
    );
    fs::remove_file(s.data().join("cluster.json")).unwrap();
    fs::write(s.data().join("msgs/0000000001.seg"), b"").unwrap();
    assert_eq!(s.refusal("rabbit@n1", Some(PEERS)), expected(&s));
}

#[test]
fn cluster_directory_started_without_peers() {
    let s = Scratch::new("nopeers");
    assert_eq!(s.resolve("rabbit@n1", None), Ok(None));
    s.resolve("rabbit@n1", Some(PEERS)).unwrap();
    assert_eq!(
        s.refusal("rabbit@host", None),
        format!(
            "data directory '{}' belongs to cluster node 'rabbit@n1'; start it with \
             --node-name rabbit@n1 and the same --peers",
            s.data().display()
        )
    );
}

#[test]
fn lost_data_text() {
    let id = [0x5f; 16];
    assert_eq!(
        lost_data_refusal(Path::new("/var/lib/warren"), "rabbit@n2", &id),
        "data directory '/var/lib/warren' is empty but rabbit@n2 was already a member of \
         cluster 5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f: a member that lost its data cannot rejoin \
         in phase 1 (its vote could help elect a leader that lacks confirmed messages)"
    );
}

#[test]
fn cluster_ids_round_trip_through_hex() {
    let id: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
    assert_eq!(parse_cluster_id(&hex(&id)), Some(id));
    assert_eq!(parse_cluster_id("5f"), None);
    assert_eq!(parse_cluster_id(&"zz".repeat(16)), None);
    assert_eq!(parse_cluster_id(&"é".repeat(16)), None);
}
