# Helpers for targets that use Qt's code generators. moc, uic and rcc run at build time; their
# output lands in the build tree and is never committed.
include_guard(GLOBAL)

find_package(Qt5 COMPONENTS Core Widgets REQUIRED)

# add_qt_library(NAME SOURCES... HEADERS... FORMS... RESOURCES...)
function(add_qt_library name)
    cmake_parse_arguments(ARG "" "" "SOURCES;HEADERS;FORMS;RESOURCES" ${ARGN})
    qt5_wrap_cpp(moc_sources ${ARG_HEADERS})
    qt5_wrap_ui(ui_headers ${ARG_FORMS})
    qt5_add_resources(qrc_sources ${ARG_RESOURCES})
    add_library(${name} ${ARG_SOURCES} ${moc_sources} ${ui_headers} ${qrc_sources})
    target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_BINARY_DIR})
    target_link_libraries(${name} PUBLIC Qt5::Core Qt5::Widgets)
endfunction()

# The same for one header by hand, when AUTOMOC cannot see it (a Q_OBJECT in a .cpp file).
function(moc_one_file header out)
    add_custom_command(
        OUTPUT ${out}
        COMMAND Qt5::moc ${header} -o ${out}
        DEPENDS ${header}
        COMMENT "moc ${header}")
endfunction()
