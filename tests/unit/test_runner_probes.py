from builder.runner import probes

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx sse2\n"
AMD = "processor\t: 0\nflags\t\t: fpu svm sse2\n"
GUEST = "processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n"
LSMOD = "Module                  Size  Used by\nkvm_intel             409600  0\nkvm                  1327104  1 kvm_intel\n"


def test_virt_flag():
    assert probes.virt_flag(INTEL) == "vmx"
    assert probes.virt_flag(AMD) == "svm"
    assert probes.virt_flag(GUEST) is None


def test_modules_from_lsmod_and_proc_modules():
    assert probes.loaded_modules(LSMOD) == {"kvm", "kvm_intel"}
    assert probes.loaded_modules("kvm 1327104 0 - Live 0x0000000000000000\n") == {"kvm"}
    assert probes.loaded_modules(None) is None


def test_module_state():
    assert probes.module_state("kvm", {"kvm"}, {"kvm"}) == "module"
    assert probes.module_state("kvm", set(), {"kvm"}) == "builtin"
    assert probes.module_state("kvm", None, {"kvm"}) == "present"
    assert probes.module_state("kvm", None, set()) == "absent"


def _probe(cpuinfo=INTEL, release="6.1.0-18-amd64", lsmod=LSMOD, sysmod=("kvm", "kvm_intel"), **params):
    p = {"kvm_intel.nested": None, "kvm_amd.nested": None, "kvm.enable_virt_at_load": None}
    p.update({k.replace("__", "."): v for k, v in params.items()})
    return probes.probe(cpuinfo=cpuinfo, release=release, proc_modules=lsmod, sys_module=set(sysmod), params=p)


def test_nested_intel_and_amd():
    assert _probe(kvm_intel__nested="Y\n")["nested"] is True
    assert _probe(kvm_intel__nested="N\n")["nested"] is False
    r = _probe(cpuinfo=AMD, kvm_amd__nested="1\n")
    assert (r["nested"], r["nested_param"]) == (True, "/sys/module/kvm_amd/parameters/nested")
    assert _probe(cpuinfo=AMD, kvm_amd__nested="0\n")["nested"] is False
    assert _probe(cpuinfo=GUEST, lsmod="", sysmod=())["nested"] is None


def test_old_kernel_takes_vtx_only_while_guests_run():
    r = _probe(release="6.1.0-18-amd64")["virtualbox_kvm"]
    assert r["conflict"] is False and "while a KVM guest runs" in r["reason"]


def test_new_kernel_conflicts_and_says_how_to_fix_module():
    r = _probe(release="6.12.9-amd64", kvm__enable_virt_at_load="Y\n")["virtualbox_kvm"]
    assert r["conflict"] is True
    assert r["fix"] == [
        "echo 'options kvm enable_virt_at_load=0' > /etc/modprobe.d/kvm-virtualbox.conf",
        "modprobe -r kvm_intel kvm && modprobe kvm_intel",
    ]


def test_new_kernel_without_param_readable_still_conflicts():
    assert _probe(release="6.13.0", kvm__enable_virt_at_load=None)["virtualbox_kvm"]["conflict"] is True


def test_disabled_at_load_is_fine():
    assert _probe(release="6.12.9", kvm__enable_virt_at_load="N\n")["virtualbox_kvm"]["conflict"] is False


def test_builtin_kvm_needs_kernel_command_line():
    r = _probe(release="6.18.4", lsmod="", sysmod=("kvm",), kvm__enable_virt_at_load="Y")["virtualbox_kvm"]
    assert r["fix"][0].startswith("add kvm.enable_virt_at_load=0 to GRUB_CMDLINE_LINUX")


def test_no_kvm_no_conflict():
    assert _probe(lsmod="", sysmod=())["virtualbox_kvm"]["conflict"] is False


def test_probe_host_reads_this_machine():
    r = probes.probe_host()
    assert set(r) >= {"cpu_virt_flag", "nested", "kvm_module", "virtualbox_kvm"}
