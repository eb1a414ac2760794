# CMake toolchain file for the GNU Arm Embedded toolchain (arm-none-eabi-gcc, newlib-nano):
#   cmake -DCMAKE_TOOLCHAIN_FILE=path/to/arm-none-eabi.cmake -DTINYPRUNE_CPU_FLAGS="-mcpu=cortex-m7 -mthumb" ...
# Used by tinyprune's tests to build the generated CMakeLists.txt for a Cortex-M core; your IDE's
# (STM32CubeIDE/CubeMX, MCUXpresso, ...) toolchain file does the same job in your project.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(TINYPRUNE_CROSS "arm-none-eabi-" CACHE STRING "toolchain prefix (may include a path)")
set(CMAKE_C_COMPILER "${TINYPRUNE_CROSS}gcc")
set(CMAKE_CXX_COMPILER "${TINYPRUNE_CROSS}g++")
set(CMAKE_ASM_COMPILER "${TINYPRUNE_CROSS}gcc")
set(CMAKE_AR "${TINYPRUNE_CROSS}ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${TINYPRUNE_CROSS}ranlib" CACHE FILEPATH "")
set(CMAKE_OBJCOPY "${TINYPRUNE_CROSS}objcopy" CACHE FILEPATH "")
# without an OS there is nothing to link a test executable against: try_compile builds a library
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(TINYPRUNE_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" CACHE STRING "core flags")
set(CMAKE_C_FLAGS_INIT "${TINYPRUNE_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
