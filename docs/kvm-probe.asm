; The KVM probe guest (builder/host.py BOOT_SECTOR): `nasm -f bin docs/kvm-probe.asm` gives its bytes.
; real mode -> protected mode with PAE paging -> long mode -> out 0x2a to isa-debug-exit (0xf4)
bits 16
org 0x7c00
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  ; page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD): identity-map 2 MiB
  mov di, 0x1000
  mov cx, 0x1800
  xor ax, ax
  rep stosw
  mov word [0x1000], 0x2003
  mov word [0x2000], 0x3003
  mov word [0x3000], 0x0083
  mov eax, 0x20        ; CR4.PAE
  mov cr4, eax
  mov eax, 0x1000
  mov cr3, eax
  mov ecx, 0xc0000080  ; EFER.LME
  rdmsr
  or eax, 0x100
  wrmsr
  lgdt [gdtr]
  mov eax, cr0
  or eax, 0x80000001   ; PG | PE
  mov cr0, eax
  jmp 0x08:lm
bits 64
lm:
  mov al, 0x2a
  out 0xf4, al
  hlt
  jmp $-1
align 8
gdt: dq 0
  dq 0x00af9a000000ffff  ; code 64
gdtr: dw gdtr - gdt - 1
  dd gdt
times 510-($-$$) db 0
dw 0xaa55
