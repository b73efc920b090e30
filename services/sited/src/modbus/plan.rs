//! Which read requests cover a register map: entries of the same unit and table whose
//! addresses touch or overlap share one request, up to what one Modbus request may carry (125
//! registers, 2000 bits). Gaps are not bridged: reading an address nobody mapped may draw an
//! exception that would take the mapped sensors down with it.

use appliance::profile::{ModbusRegister, ModbusTable};

/// Registers one read request may ask for (Modbus application protocol, function 3 and 4).
pub const MAX_REGISTERS: u16 = 125;
/// Bits one read request may ask for (functions 1 and 2).
pub const MAX_BITS: u16 = 2000;

/// One read request and the map entries its answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub unit: u8,
    pub table: ModbusTable,
    /// First address read.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices into the register map of the entries inside this block.
    pub entries: Vec<usize>,
}

impl ReadBlock {
    /// One past the last address read, as a `u32` so the end of the address space fits.
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// The fewest contiguous read requests that cover `registers`, ordered by unit, table and
/// address. Entries must be valid (a 32-bit entry does not start at 65535).
pub fn plan_reads(registers: &[ModbusRegister]) -> Vec<ReadBlock> {
    let mut order: Vec<usize> = (0..registers.len()).collect();
    order.sort_by_key(|&i| {
        let r = &registers[i];
        (r.unit, r.table, r.address)
    });
    let mut blocks: Vec<ReadBlock> = Vec::new();
    for i in order {
        let r = &registers[i];
        let end = u32::from(r.address) + u32::from(r.width());
        let limit = u32::from(if r.table.is_bits() {
            MAX_BITS
        } else {
            MAX_REGISTERS
        });
        if let Some(block) = blocks.last_mut()
            && block.unit == r.unit
            && block.table == r.table
            && u32::from(r.address) <= block.end()
            && end.max(block.end()) - u32::from(block.start) <= limit
        {
            let new_end = end.max(block.end());
            block.count = u16::try_from(new_end - u32::from(block.start))
                .expect("a block never exceeds the request limit");
            block.entries.push(i);
            continue;
        }
        blocks.push(ReadBlock {
            unit: r.unit,
            table: r.table,
            start: r.address,
            count: r.width(),
            entries: vec![i],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use appliance::profile::ModbusType;

    use super::*;

    fn entry(unit: u8, table: ModbusTable, address: u16, value_type: ModbusType) -> ModbusRegister {
        ModbusRegister {
            sensor: format!("s{unit}-{table}-{address}"),
            unit,
            table,
            address,
            value_type,
            word_order: None,
            scale: None,
            offset: None,
            unit_of_measure: None,
            min: None,
            max: None,
        }
    }

    fn spans(blocks: &[ReadBlock]) -> Vec<(u8, ModbusTable, u16, u16, Vec<usize>)> {
        blocks
            .iter()
            .map(|b| (b.unit, b.table, b.start, b.count, b.entries.clone()))
            .collect()
    }

    #[test]
    fn contiguous_entries_share_a_request_per_unit_and_table() {
        use ModbusTable::*;
        use ModbusType::*;
        let map = [
            entry(1, Input, 2, U32),     // 0: 2..4
            entry(1, Input, 0, I16),     // 1: 0..1
            entry(1, Input, 1, U16),     // 2: 1..2
            entry(1, Input, 10, F32),    // 3: gap before it
            entry(1, Holding, 0, U16),   // 4: other table
            entry(2, Input, 0, U16),     // 5: other unit
            entry(1, Discrete, 0, Bool), // 6
            entry(1, Discrete, 1, Bool), // 7
            entry(1, Discrete, 1, Bool), // 8: the same bit twice
        ];
        assert_eq!(
            spans(&plan_reads(&map)),
            [
                (1, Holding, 0, 1, vec![4]),
                (1, Input, 0, 4, vec![1, 2, 0]),
                (1, Input, 10, 2, vec![3]),
                (1, Discrete, 0, 2, vec![6, 7, 8]),
                (2, Input, 0, 1, vec![5]),
            ]
        );
    }

    #[test]
    fn requests_stay_within_the_protocol_limits() {
        let registers: Vec<ModbusRegister> = (0..300)
            .map(|a| entry(1, ModbusTable::Holding, a, ModbusType::U16))
            .collect();
        let counts: Vec<u16> = plan_reads(&registers).iter().map(|b| b.count).collect();
        assert_eq!(counts, [125, 125, 50]);

        let bits: Vec<ModbusRegister> = (0..4100)
            .map(|a| entry(1, ModbusTable::Coil, a, ModbusType::Bool))
            .collect();
        let counts: Vec<u16> = plan_reads(&bits).iter().map(|b| b.count).collect();
        assert_eq!(counts, [2000, 2000, 100]);

        // A 32-bit value that would cross the limit starts the next request.
        let mut map: Vec<ModbusRegister> = (0..124)
            .map(|a| entry(1, ModbusTable::Input, a, ModbusType::U16))
            .collect();
        map.push(entry(1, ModbusTable::Input, 124, ModbusType::U32));
        let blocks = plan_reads(&map);
        assert_eq!(
            (blocks[0].count, blocks[1].start, blocks[1].count),
            (124, 124, 2)
        );
    }

    #[test]
    fn the_last_addresses_are_reachable() {
        let map = [
            entry(1, ModbusTable::Input, 65534, ModbusType::U32),
            entry(1, ModbusTable::Input, 65535, ModbusType::U16),
        ];
        assert_eq!(
            spans(&plan_reads(&map)),
            [(1, ModbusTable::Input, 65534, 2, vec![0, 1])]
        );
    }
}
