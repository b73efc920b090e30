pub mod evidence;
