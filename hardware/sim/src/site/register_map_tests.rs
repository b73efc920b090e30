use super::*;

fn register(value_type: ModbusType, word_order: WordOrder, scale: f64, offset: f64) -> Register {
    Register {
        sensor: "test".into(),
        unit: 1,
        table: ModbusTable::Input,
        address: 0,
        value_type,
        word_order,
        scale,
        offset,
        unit_of_measure: String::new(),
        min: None,
        max: None,
        quantity: Quantity::Intrusion { contact: 0 },
    }
}

#[test]
fn words_round_trip_through_every_type_and_order() {
    let cases = [
        (
            ModbusType::I16,
            WordOrder::Big,
            0.1,
            0.0,
            -12.3,
            vec![(-123i16) as u16],
        ),
        (ModbusType::U16, WordOrder::Big, 0.1, 0.0, 45.6, vec![456]),
        (ModbusType::U16, WordOrder::Big, 0.5, -40.0, 10.0, vec![100]),
        (
            ModbusType::U32,
            WordOrder::Big,
            1.0,
            0.0,
            70_000.0,
            vec![1, 4464],
        ),
        (
            ModbusType::U32,
            WordOrder::Little,
            1.0,
            0.0,
            70_000.0,
            vec![4464, 1],
        ),
        (
            ModbusType::I32,
            WordOrder::Big,
            1.0,
            0.0,
            -2.0,
            vec![0xFFFF, 0xFFFE],
        ),
        (
            ModbusType::F32,
            WordOrder::Big,
            1.0,
            0.0,
            1.5,
            vec![0x3FC0, 0x0000],
        ),
        (ModbusType::Bool, WordOrder::Big, 1.0, 0.0, 1.0, vec![1]),
    ];
    for (value_type, order, scale, offset, value, words) in cases {
        let r = register(value_type, order, scale, offset);
        assert_eq!(r.encode(value), words, "{value_type:?} {order:?} {value}");
        assert!(
            (r.decode(&words) - value).abs() < 1e-9,
            "{value_type:?} {order:?}"
        );
    }
}

#[test]
fn values_beyond_the_type_are_clamped_not_wrapped() {
    let r = register(ModbusType::U16, WordOrder::Big, 0.1, 0.0);
    assert_eq!(r.encode(-5.0), vec![0]);
    assert_eq!(r.encode(1e9), vec![u16::MAX]);
    let r = register(ModbusType::I16, WordOrder::Big, 0.1, 0.0);
    assert_eq!(r.encode(-1e9), vec![i16::MIN as u16]);
}

#[test]
fn ports_count_up_from_the_base_unless_it_is_zero() {
    let planned = planned_addresses("127.70.0.1:15020".parse().unwrap());
    assert_eq!(planned.len(), DEVICES.len());
    assert_eq!(planned[4].port(), 15024);
    let any = planned_addresses("127.70.0.1:0".parse().unwrap());
    assert!(any.iter().all(|a| a.port() == 0));
}
