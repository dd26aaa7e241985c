//! Small `memcpy`/`memmove`/`memset`/`memcmp` and their ARM EABI aliases.
//!
//! The compiler-builtins versions are tuned for speed and take about 3.9 KB together; these
//! take about 220 bytes. They move (and compare) whole words when both pointers are word
//! aligned, else bytes: the largest copy here is a 4 KiB page (about 0.1 ms at 64 MHz, against
//! 85 ms to erase the page it goes to). Compiler-builtins defines its versions as weak symbols,
//! so these win. `tools/boot-emu/tests/mem.rs` runs this file under the emulator.
//!
//! Argument order: `memset(dst, c, n)` but `__aeabi_memset(dst, n, c)`; the `4`/`8` suffixes
//! only promise alignment, which the generic code does not need.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.tock_ota_mem, "ax"
    .syntax unified
    .thumb

    .global memcpy
    .type memcpy, %function
    .global __aeabi_memcpy
    .thumb_set __aeabi_memcpy, memcpy
    .global __aeabi_memcpy4
    .thumb_set __aeabi_memcpy4, memcpy
    .global __aeabi_memcpy8
    .thumb_set __aeabi_memcpy8, memcpy
    .thumb_func
memcpy:
    @ r0 dst, r1 src, r2 n; returns dst. Forward copy: also a correct memmove when dst <= src.
    mov r12, r0
    orr r3, r0, r1
    lsls r3, r3, #30
    bne 2f
1:  subs r2, r2, #4
    bcc 3f
    ldr r3, [r1], #4
    str r3, [r12], #4
    b 1b
3:  adds r2, r2, #4
2:  subs r2, r2, #1
    bcc 4f
    ldrb r3, [r1], #1
    strb r3, [r12], #1
    b 2b
4:  bx lr
    .size memcpy, . - memcpy

    .global memmove
    .type memmove, %function
    .global __aeabi_memmove
    .thumb_set __aeabi_memmove, memmove
    .global __aeabi_memmove4
    .thumb_set __aeabi_memmove4, memmove
    .global __aeabi_memmove8
    .thumb_set __aeabi_memmove8, memmove
    .thumb_func
memmove:
    @ Forward unless dst lies inside (src, src + n): then bytes from the end.
    cmp r0, r1
    bls memcpy
    adds r3, r1, r2
    cmp r0, r3
    bhs memcpy
1:  subs r2, r2, #1
    bcc 2f
    ldrb r3, [r1, r2]
    strb r3, [r0, r2]
    b 1b
2:  bx lr
    .size memmove, . - memmove

    .global __aeabi_memclr
    .type __aeabi_memclr, %function
    .global __aeabi_memclr4
    .thumb_set __aeabi_memclr4, __aeabi_memclr
    .global __aeabi_memclr8
    .thumb_set __aeabi_memclr8, __aeabi_memclr
    .thumb_func
__aeabi_memclr:
    @ (dst, n)
    mov r2, r1
    movs r1, #0
    b memset
    .size __aeabi_memclr, . - __aeabi_memclr

    .global __aeabi_memset
    .type __aeabi_memset, %function
    .global __aeabi_memset4
    .thumb_set __aeabi_memset4, __aeabi_memset
    .global __aeabi_memset8
    .thumb_set __aeabi_memset8, __aeabi_memset
    .thumb_func
__aeabi_memset:
    @ (dst, n, c) -> (dst, c, n)
    mov r3, r1
    mov r1, r2
    mov r2, r3
    .size __aeabi_memset, . - __aeabi_memset

    .global memset
    .type memset, %function
    .thumb_func
memset:
    @ r0 dst, r1 c, r2 n; returns dst.
    mov r12, r0
    uxtb r1, r1
    orr r1, r1, r1, lsl #8
    orr r1, r1, r1, lsl #16
    lsls r3, r0, #30
    bne 2f
1:  subs r2, r2, #4
    bcc 3f
    str r1, [r12], #4
    b 1b
3:  adds r2, r2, #4
2:  subs r2, r2, #1
    bcc 4f
    strb r1, [r12], #1
    b 2b
4:  bx lr
    .size memset, . - memset

    .global memcmp
    .type memcmp, %function
    .global bcmp
    .thumb_set bcmp, memcmp
    .thumb_func
memcmp:
    @ r0 a, r1 b, r2 n; returns a[i] - b[i] (bytes unsigned) at the first difference, else 0.
    @ Whole words while both pointers are word aligned; a word that differs is compared
    @ again byte by byte to find the first differing byte.
    orr r3, r0, r1
    lsls r3, r3, #30
    bne 2f
1:  subs r2, r2, #4
    bcc 3f
    ldr r3, [r0], #4
    ldr r12, [r1], #4
    cmp r3, r12
    beq 1b
    subs r0, r0, #4
    subs r1, r1, #4
3:  adds r2, r2, #4
2:  subs r2, r2, #1
    bcc 4f
    ldrb r3, [r0], #1
    ldrb r12, [r1], #1
    subs r3, r3, r12
    beq 2b
    mov r0, r3
    bx lr
4:  movs r0, #0
    bx lr
    .size memcmp, . - memcmp
"#
);
