//! Fuel for bulk instructions by the bytes they move.
//!
//! wasmer's metering charges each operator a cost known at compile time, so
//! a `memory.fill` of 16 MB costs what an `i32.add` does. This middleware
//! runs after [`wasmer_middlewares::Metering`] in the compiler's chain and,
//! before every bulk memory or table instruction, charges the metering
//! middleware's own fuel global one unit per 64 bytes (memory) or 8 entries
//! (tables) of the instruction's length operand, trapping as metering does
//! when the fuel runs out (the exhausted flag set, then `unreachable`). The
//! length is parked in a global of the middleware's own while it is
//! charged, and put back on the stack for the instruction.

use std::sync::Mutex;

use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::wasmparser::{BlockType, Operator};
use wasmer::{
    ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, ModuleInfo, Mutability, Type,
};

/// The metering middleware's exports this one charges.
const REMAINING: &str = "wasmer_metering_remaining_points";
const EXHAUSTED: &str = "wasmer_metering_points_exhausted";

/// Shifts that turn a length into fuel: one unit per 64 bytes, per 8 table
/// entries.
const MEMORY_SHIFT: i64 = 6;
const TABLE_SHIFT: i64 = 3;

/// Globals of one module: metering's two and the parked length.
#[derive(Debug, Clone, Copy)]
struct Globals {
    remaining: u32,
    exhausted: u32,
    length: u32,
}

/// The module middleware (one per compile, like `Metering`).
#[derive(Debug, Default)]
pub(crate) struct BulkMetering {
    globals: Mutex<Option<Globals>>,
}

impl ModuleMiddleware for BulkMetering {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        Box::new(FunctionBulkMetering {
            globals: *self.globals.lock().expect("bulk metering globals"),
        })
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let global = |name: &str| match info.exports.get(name) {
            Some(ExportIndex::Global(g)) => Ok(g.as_u32()),
            _ => Err(MiddlewareError::new(
                "BulkMetering",
                format!("{name} is missing: the metering middleware must come first"),
            )),
        };
        let (remaining, exhausted) = (global(REMAINING)?, global(EXHAUSTED)?);
        let length = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        *self.globals.lock().expect("bulk metering globals") = Some(Globals {
            remaining,
            exhausted,
            length: length.as_u32(),
        });
        Ok(())
    }
}

struct FunctionBulkMetering {
    globals: Option<Globals>,
}

impl<'a> FunctionMiddleware<'a> for FunctionBulkMetering {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        let shift = match operator {
            Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::MemoryInit { .. } => Some(MEMORY_SHIFT),
            Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. } => Some(TABLE_SHIFT),
            _ => None,
        };
        if let (Some(shift), Some(g)) = (shift, self.globals) {
            // The length is the operand on top of the stack for all six.
            let cost = |state: &mut MiddlewareReaderState<'a>| {
                state.extend(&[
                    Operator::GlobalGet {
                        global_index: g.length,
                    },
                    Operator::I64ExtendI32U,
                    Operator::I64Const { value: shift },
                    Operator::I64ShrU,
                ]);
            };
            state.push_operator(Operator::GlobalSet {
                global_index: g.length,
            });
            // if remaining < cost { exhausted = 1; unreachable }
            state.push_operator(Operator::GlobalGet {
                global_index: g.remaining,
            });
            cost(state);
            state.extend(&[
                Operator::I64LtU,
                Operator::If {
                    blockty: BlockType::Empty,
                },
                Operator::I32Const { value: 1 },
                Operator::GlobalSet {
                    global_index: g.exhausted,
                },
                Operator::Unreachable,
                Operator::End,
                Operator::GlobalGet {
                    global_index: g.remaining,
                },
            ]);
            // remaining -= cost
            cost(state);
            state.extend(&[
                Operator::I64Sub,
                Operator::GlobalSet {
                    global_index: g.remaining,
                },
                Operator::GlobalGet {
                    global_index: g.length,
                },
            ]);
        }
        state.push_operator(operator);
        Ok(())
    }
}

impl std::fmt::Debug for FunctionBulkMetering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionBulkMetering")
            .field("globals", &self.globals)
            .finish()
    }
}
