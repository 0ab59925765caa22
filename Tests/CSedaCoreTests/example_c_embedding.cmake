# Installs the freshly built core into a scratch prefix, then builds and runs
# examples/c against it, once through find_package(Seda) (with
# CMAKE_PREFIX_PATH, as the README says) and once through the README's
# pkg-config line. Any failing step fails the test.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install ${SEDA_BUILD_DIR} --prefix ${prefix})

# 1. CMake package: find_package(Seda) -> Seda::core
run(${CMAKE_COMMAND} -S ${SEDA_SOURCE_DIR}/examples/c -B ${WORK_DIR}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/seda-example)

# 2. pkg-config, exactly as the README shows it:
#      cc -o app main.c $(pkg-config --cflags --libs seda)
#    (no --static: the default install is a static library, whose seda.pc
#    lists what it needs in Libs).
file(GLOB pcdir ${prefix}/lib*/pkgconfig ${prefix}/lib/*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
run(pkg-config --validate seda)
execute_process(COMMAND pkg-config --cflags --libs seda
  OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not know seda (PKG_CONFIG_PATH=${pcdir})")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${C_COMPILER} -o ${WORK_DIR}/seda-example-pc ${SEDA_SOURCE_DIR}/examples/c/main.c ${flags})
run(${WORK_DIR}/seda-example-pc)
