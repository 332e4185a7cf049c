//! Process exit: a panic of the main thread removes every rule of every live injector.
//! (Its own test binary: the panic hook and the undo are process-wide.)

mod common;

use std::net::IpAddr;
use std::process::Command;

use hms::antagonist::inject::{Injector, LossSite, SystemInjector, install_panic_hook};
use hms::antagonist::plan::LossScope;

struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.0]).output();
    }
}

fn ruleset() -> String {
    let out = Command::new("nft").args(["list", "ruleset"]).output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_of_the_main_thread_removes_every_rule() {
    let table = common::unique_table();
    let _guard = TableGuard(table.clone());
    let injector = SystemInjector::new(&table, false);
    // an address no container uses: the rule exists, nothing is disturbed
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    injector.inject(&LossSite { ip, scope: LossScope::Link, pid: None }, 40).await.expect("nft accepts the rule");
    assert!(ruleset().contains(&table));
    install_panic_hook();
    let worker = std::thread::Builder::new().name("worker".into()).spawn(|| panic!("not the main thread")).unwrap();
    assert!(worker.join().is_err());
    assert!(ruleset().contains(&table), "a caught panic elsewhere leaves the attacks alone");
    let main = std::thread::Builder::new().name("main".into()).spawn(|| panic!("the process goes down")).unwrap();
    assert!(main.join().is_err());
    assert!(!ruleset().contains(&table), "the hook removed the table:\n{}", ruleset());
    drop(injector);
}
