//! `neutrino demo`: a small cloud in namespaces, who can ping whom, then teardown.

use neutrino_lab::{check_tools, ApiClient, Lab, LabConfig};

pub async fn run(prefix: &str) -> Result<(), String> {
    check_tools().map_err(|e| e.to_string())?;
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("neutrino-demo-{}", std::process::id()));
    println!("building the lab: underlay 192.0.2.0/24, hosts h1 and h2, server at 192.0.2.1:9696");
    let mut lab = Lab::start(LabConfig {
        prefix: prefix.to_string(),
        binary,
        hosts: vec!["h1".into(), "h2".into()],
        database: None,
        server_port: 9696,
        dir: dir.clone(),
    })
    .map_err(|e| e.to_string())?;
    let api = lab.api();
    let result = scenario(&mut lab, &api).await;
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    println!("lab torn down");
    result
}

async fn scenario(lab: &mut Lab, api: &ApiClient) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let net = api.create_network("demo-net").await.map_err(|e| err(&e))?;
    api.create_subnet(net["id"].as_str().unwrap_or_default(), "198.51.100.0/24").await.map_err(|e| err(&e))?;
    println!(
        "network demo-net: VXLAN VNI {}, MTU {}, subnet 198.51.100.0/24",
        net["provider:segmentation_id"], net["mtu"]
    );
    let mut vms = Vec::new();
    for (name, host) in [("vm1", "h1"), ("vm2", "h1"), ("vm3", "h2")] {
        let vm = lab.boot_vm(api, &net, name, host).await.map_err(|e| err(&e))?;
        println!("  {name} on {host}: {} (port {} ACTIVE)", vm.ip, vm.port_id);
        vms.push(vm);
    }
    println!("\nping matrix (from row to column):");
    print!("{:>6}", "");
    for to in &vms {
        print!("{:>6}", to.name);
    }
    println!();
    let mut failures = 0;
    for from in &vms {
        print!("{:>6}", from.name);
        for to in &vms {
            if from.name == to.name {
                print!("{:>6}", "-");
                continue;
            }
            let ok = lab.ping(&from.name, &to.ip, 2);
            failures += usize::from(!ok);
            print!("{:>6}", if ok { "ok" } else { "FAIL" });
        }
        println!();
    }
    if failures > 0 {
        return Err(format!("{failures} ping(s) failed"));
    }
    Ok(())
}
