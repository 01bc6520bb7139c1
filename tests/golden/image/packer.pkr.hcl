# Rendered by builder for minimal 0.1.0; do not edit.
source "qemu" "image" {
  iso_url          = "file:///c/disk.raw"
  iso_checksum     = "none"
  disk_image       = true
  format           = "qcow2"
  disk_size        = "2048M"
  skip_resize_disk = true
  disk_compression = false
  skip_compaction  = true
  accelerator      = "tcg"
  cpus             = 2
  memory           = 1024
  headless         = true
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  output_directory = "/c/out"
  vm_name          = "image.qcow2"
  boot_wait        = "1ms"  # "0s" is read as unset: packer 1.6 then waits its default 10 s
  # packer reaches the guest's sshd through builder's SSH gate (image/sshgate.py), not its own
  # forward: one early connection through slirp waits out the SYN backoff
  skip_nat_mapping = true
  qemuargs         = [
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:40002-:22"],
    ["-serial", "file:/c/console.log"],
  ]

  communicator         = "ssh"
  ssh_host             = "127.0.0.1"
  ssh_port             = 40001
  ssh_username         = "root"
  ssh_private_key_file = "/c/key"
  ssh_timeout          = "900s"
  shutdown_command     = "systemctl poweroff"
  shutdown_timeout     = "5m"
}

build {
  sources = ["source.qemu.image"]

  provisioner "shell" {
    scripts = ["/c/s/00-builder-grub.sh", "/c/s/01-10-motd.sh", "/c/s/02-builder-cleanup.sh"]
  }
}
