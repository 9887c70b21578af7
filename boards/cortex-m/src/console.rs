//! Where the generated text goes: any `embedded_io::Write` (the trait most HALs implement for their
//! UARTs). This board's is the MPS2's CMSDK APB UART0, which qemu connects to its serial port.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// UART0 of the MPS2 AN385/AN386/AN500 FPGA images.
const UART0_BASE: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1;
const CTRL_TX_EN: u32 = 1;

/// The CMSDK APB UART, transmit only, polled.
pub struct CmsdkUart {
    base: usize,
}

impl CmsdkUart {
    /// UART0 with its transmitter enabled (the divisor only matters on hardware: 25 MHz / 217 ≈ 115200 baud).
    pub fn uart0() -> CmsdkUart {
        let u = CmsdkUart { base: UART0_BASE };
        u.write_reg(BAUDDIV, 217);
        u.write_reg(CTRL, CTRL_TX_EN);
        u
    }

    fn write_reg(&self, off: usize, v: u32) {
        // SAFETY: `base` is the UART's MMIO block on this board; its registers are 32-bit words
        // at these offsets, and only this driver touches them.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }

    fn read_reg(&self, off: usize) -> u32 {
        // SAFETY: as in `write_reg`.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = Infallible;
}

impl embedded_io::Write for CmsdkUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
            self.write_reg(DATA, u32::from(b));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
